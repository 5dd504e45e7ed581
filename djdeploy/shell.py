"""The shell words of the commands the deploy sends to hosts, quoted in one place, and the
name the controller gives itself in them (lock owners, revisions.log)."""

from __future__ import annotations

import shlex
import socket

CONTROLLER = socket.gethostname()


def shell_quote(value) -> str:
    """`value` as one shell word."""
    return shlex.quote(str(value))
