"""The shell words of the commands the deploy sends to hosts, quoted in one place, and the
name the controller gives itself in them (lock owners, revisions.log)."""

from __future__ import annotations

import shlex
import socket

CONTROLLER = socket.gethostname()


def shell_quote(value) -> str:
    """`value` as one shell word."""
    return shlex.quote(str(value))


def touching(command, *paths, units=()):
    """`command` (a shell command an operation yields) changes the host only under `paths`
    and the state of `units` (systemd units; none by default): the fact batch keeps
    answering every fact that reads neither (djdeploy.speed.factcache). An untagged
    command may change anything."""
    from pyinfra.api import StringCommand

    command = command if isinstance(command, StringCommand) else StringCommand(command)
    command.touches = (tuple(paths), tuple(units))
    return command


PRIVILEGE = ("_sudo", "_sudo_user", "_sudo_password", "_use_sudo_login", "_preserve_sudo_env",
             "_su_user", "_use_su_login", "_su_shell", "_preserve_su_env", "_su_password",
             "_doas", "_doas_user", "_dzdo", "_dzdo_user")


def privilege(host) -> dict:
    """The run's sudo/su arguments (--sudo, host data), for what runs outside operations'
    commands (a file read or written by hand, the fact batch)."""
    from pyinfra.api.arguments import pop_global_arguments

    arguments, _ = pop_global_arguments(host.state, host, {})
    return {k: v for k, v in arguments.items() if k in PRIVILEGE and v}
