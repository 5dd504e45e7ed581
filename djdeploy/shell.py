"""The shell words of the commands the deploy sends to hosts, quoted in one place, and the
name the controller gives itself in them (lock owners, revisions.log)."""

from __future__ import annotations

import shlex
import socket

CONTROLLER = socket.gethostname()


def shell_quote(value) -> str:
    """`value` as one shell word."""
    return shlex.quote(str(value))


PRIVILEGE = ("_sudo", "_sudo_user", "_sudo_password", "_use_sudo_login", "_preserve_sudo_env",
             "_su_user", "_use_su_login", "_su_shell", "_preserve_su_env", "_su_password",
             "_doas", "_doas_user", "_dzdo", "_dzdo_user")


def privilege(host) -> dict:
    """The run's sudo/su arguments (--sudo, host data), for what runs outside operations'
    commands (a file read or written by hand, the fact batch)."""
    from pyinfra.api.arguments import pop_global_arguments

    arguments, _ = pop_global_arguments(host.state, host, {})
    return {k: v for k, v in arguments.items() if k in PRIVILEGE and v}
