"""Rolling switches: which hosts switch together, and whether a batch may go.

pyinfra runs each operation on every host (in parallel) before the next operation, and
drops a host from the run when one of its operations fails. The deploy adds one switch
operation per batch; each host acts only in its own batch, and a batch goes only while
no host has failed in this run, so a failed batch stops the ones after it.
"""

from __future__ import annotations

import math


def batch_size(total: int, batch: str | None) -> int:
    """Hosts per batch: a count ("2"), a share ("25%"), or by default 1 above 2 hosts."""
    if batch is None:
        return 1 if total > 2 else max(total, 1)
    if batch.endswith("%"):
        return max(1, math.ceil(total * int(batch[:-1]) / 100))
    return max(1, min(int(batch), total))


def batches(names: list[str], batch: str | None) -> list[list[str]]:
    names = sorted(names)
    size = batch_size(len(names), batch)
    return [names[i:i + size] for i in range(0, len(names), size)]


def nothing_failed(state):
    """An `_if` for a batch: true while no host of this run has failed."""
    return lambda: not state.failed_hosts


def changed(*ops):
    """True if any of `ops` changed (after they ran) or will change (when planning)."""
    return lambda: any(op.did_change() if op.is_complete() else op.will_change for op in ops)
