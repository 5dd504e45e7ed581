"""The SSH connection under pyinfra's SSH connector (paramiko's transport): the one place
outside speed/ that reaches it (docs/architecture.md lists it with pyinfra's other internals).

A host that stops answering mid-run (powered off, its network gone) would hold the run for
as long as TCP retries (about 15 minutes): SSH keepalives every few seconds, and the
connection given up once they go unanswered for DEAD_AFTER_SECONDS.
"""

from __future__ import annotations

import socket

KEEPALIVE_SECONDS, DEAD_AFTER_SECONDS = 5, 20


def _transport(host):
    """`host`'s paramiko transport, or None (not connected, or not the SSH connector)."""
    client = getattr(getattr(host, "connector", None), "client", None)
    return client.get_transport() if client is not None else None


def watch(host) -> None:
    """`host`'s SSH connection sends keepalives and is dropped by the kernel once they go
    unacknowledged for DEAD_AFTER_SECONDS (TCP_USER_TIMEOUT): the run then fails that host
    and names it (run/rollout.py)."""
    transport = _transport(host)
    if transport is None or not transport.is_active():
        return
    transport.set_keepalive(KEEPALIVE_SECONDS)
    sock = transport.sock
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_AFTER_SECONDS * 1000)


def lost(host) -> bool:
    """Whether `host`'s SSH connection is gone."""
    transport = _transport(host)
    return transport is not None and not transport.is_active()
