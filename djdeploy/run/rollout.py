"""Rolling switches: how many hosts switch at once, and whether a batch may go.

pyinfra runs each operation on every host (in parallel) before the next operation, and
drops a host from the run when one of its operations fails. `_parallel=N` makes one
operation run N hosts at a time, batch after batch, in inventory order. The switch is
one such operation; a batch goes only while no host of this run has failed, so a failed
batch stops the ones after it. pyinfra marks failed hosts only once an operation ended
on all hosts, so `Rollout` notes each failure as it happens.
"""

from __future__ import annotations

import sys

from pyinfra.api.state import BaseStateCallback

from djdeploy import transport
from djdeploy.config.appsettings import batch_size
from djdeploy.terminal import printable

__all__ = ["Rollout", "batch_size", "nothing_failed"]


class Rollout(BaseStateCallback):
    """Remembers the hosts that failed an operation in this run, as soon as they fail; a
    host that failed because it stopped answering SSH (powered off, its network gone) is
    named in one line with the step it was at, and how to go on without it."""

    def __init__(self):
        self.failed: set[str] = set()

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        if host.name not in self.failed and transport.lost(host):
            step = next(iter(state.get_op_meta(op_hash).names), "?")
            print(printable(f"error: host {host.name} stopped answering SSH during \"{step}\" (powered off, or its "
                            "network lost): no switch starts after it in this run; once it is back, "
                            "deploy again; meanwhile, go on without it: "
                            f"--data without='[\"{host.name}\"]'"), file=sys.stderr, flush=True)
        self.failed.add(host.name)


def nothing_failed(state):
    """An `_if` for a switch: true while no host of this run has failed."""
    tracker = next((h for h in state.callback_handlers if isinstance(h, Rollout)), None)
    if tracker is None:
        tracker = Rollout()
        state.add_callback_handler(tracker)
    return lambda: not state.failed_hosts and not tracker.failed


def changed(*ops):
    """True if any of `ops` changed (after they ran) or will change (when planning); None
    stands for an operation this host has not (a worker-only host's web unit)."""
    ops = [op for op in ops if op is not None]
    return lambda: any(op.did_change() if op.is_complete() else op.will_change for op in ops)

