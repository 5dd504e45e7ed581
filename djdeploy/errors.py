"""The deploy's errors: what a user can act on, one line per problem.

They are raised, never exited on: `finally` blocks and atexit handlers (the deploy lock,
temporary files) run however a run ends. A DeployError is a pyinfra error, so pyinfra
stops the run with it (before any host changed, when raised while hosts are planned);
`install` makes pyinfra's CLI print its lines as they are, without a traceback.
"""

from __future__ import annotations

import sys

from pyinfra.api.exceptions import PyinfraError


class DeployError(PyinfraError):
    """The run cannot go on: each problem on one line, saying what is wrong and what to do."""

    def __init__(self, problems):
        self.problems = list(dict.fromkeys([problems] if isinstance(problems, str) else problems))
        super().__init__("\n".join(self.problems))

    def show(self, file=None) -> None:
        for line in self.problems:
            print(f"error: {line}", file=file or sys.stderr)


class DataError(DeployError):
    """Mistakes in group data, host data or --data."""


def fail(lines: list[str]):
    """Stop the run with these problems (see DeployError)."""
    raise DeployError(lines)


def install() -> None:
    """pyinfra's CLI prints a DeployError's own lines: one per problem, no traceback.

    pyinfra wraps an error raised by a deploy file in its WrappedError and shows it as
    "--> pyinfra error in <file> line <n>: <message>"; for ours, the file and line are
    noise to a user and the message is what to do. (An internal of pyinfra's CLI: see
    docs/architecture.md.)"""
    try:
        from pyinfra_cli.exceptions import WrappedError
    except ImportError:  # pyinfra's API used without its CLI: the error is raised as it is
        return
    if getattr(WrappedError.show, "djdeploy", False):
        return
    original = WrappedError.show

    def show(self, file=None):
        if isinstance(self.exception, DeployError):
            return self.exception.show(file)
        return original(self, file)

    show.djdeploy = True
    WrappedError.show = show
