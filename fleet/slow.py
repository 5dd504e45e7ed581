"""Slow clients ("slowloris") held against a site while a probe asks it normal questions.

Why: a server whose workers read requests themselves (gunicorn's sync workers on a bare
port) gives a whole worker to every client until that client has sent its headers. A
few clients that send one header line every few seconds, and never the blank line that
ends them, hold every worker: the site answers nobody until gunicorn's `timeout` kills
the workers, and the next slow clients do it again. A buffering front door (or an async
worker class) is the fix; this module is how the fleet tests prove it, with numbers.

    python -m fleet.slow http://169.254.1.2/ http://169.254.3.2:8080/ --connections 200 --seconds 30

holds --connections slow clients on every URL, probes every URL in turn meanwhile and
prints one JSON object: {"urls", "connections_per_url", "held_at_start", "probe", "slow"}.

- `SlowClients(url_or_urls, connections=200, trickle_every=5.0)`: a context manager; one
  thread runs a selectors loop over all the connections (cheap on a 2-core machine). A
  connection the server closes is opened again (counted). Bounded: at most
  MAX_CONNECTIONS open at once in this process, and the loop stops itself after
  max_seconds (at most MAX_SECONDS) even if nobody leaves the `with` block.
- `probe(urls, seconds)`: a new connection per GET (http.client), one URL after the
  other; reports requests, ok, failed, latency figures (time to the full response, or
  to the failure) and max_gap_s (the longest stretch in which every request failed).

Only loopback and the local fleet's link-local addresses may be targeted (fleet.load's
check_target refuses anything else). https works for both, with a CA file and a name
for SNI/verification, like curl's --resolve (`server_hostname`), for a TLS front door.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import resource
import selectors
import signal
import socket
import ssl
import statistics
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from fleet.load import check_target

MAX_CONNECTIONS = 1000  # open at once, over every SlowClients of this process
MAX_SECONDS = 300.0  # a SlowClients stops by itself after this long at most
CONNECT_TIMEOUT = 5.0  # a connect (or TLS handshake) that takes longer is given up
RECONNECT_AFTER = 0.1  # after the server closed a held connection
RETRY_AFTER = 1.0  # after a connect failed
TICK = 0.1  # how often the loop looks at its connections' timers

_reserved = 0
_reserved_lock = threading.Lock()


def target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL on loopback or a local fleet address, or exit."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SystemExit(f"slow: {url}: only http:// and https:// URLs")
    try:
        host, port, path = check_target(url)
    except ValueError:  # a name, not an address
        raise SystemExit(f"slow: {url} is not loopback or a local fleet address: refusing")
    if parts.port is None and parts.scheme == "https":
        port = 443
    return parts.scheme, host, port, path + (f"?{parts.query}" if parts.query else "")


def host_header(host: str, port: int, scheme: str, name: str | None) -> str:
    if name:
        return name
    default = 443 if scheme == "https" else 80
    return host if port == default else f"{host}:{port}"


def tls_context(cafile: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def _reserve(n: int) -> None:
    global _reserved
    with _reserved_lock:
        if _reserved + n > MAX_CONNECTIONS:
            raise ValueError(f"slow: {n} more connections would exceed {MAX_CONNECTIONS} "
                             f"({_reserved} already held)")
        _reserved += n


def _release(n: int) -> None:
    global _reserved
    with _reserved_lock:
        _reserved -= n


def _ensure_fds(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


class _Conn:
    """One slow client: idle (waiting to connect) -> connecting -> [handshake] -> open."""

    __slots__ = ("target", "sock", "state", "due", "started", "lines", "was_held")

    def __init__(self, target):
        self.target = target
        self.sock = None
        self.state = "idle"
        self.due = 0.0
        self.started = 0.0
        self.lines = 0
        self.was_held = False


class SlowClients:
    """Hold `connections` slow clients on each URL for the life of a `with` block."""

    def __init__(self, url, connections: int = 200, trickle_every: float = 5.0, *,
                 max_seconds: float = MAX_SECONDS, cafile: str | None = None,
                 server_hostname: str | None = None, host_header: str | None = None):
        urls = [url] if isinstance(url, str) else list(url)
        self.targets = [target(u) for u in urls]
        self.total = connections * len(self.targets)
        if connections < 1 or self.total > MAX_CONNECTIONS:
            raise ValueError(f"slow: {self.total} connections: must be 1..{MAX_CONNECTIONS}")
        self.trickle_every = trickle_every
        self.max_seconds = min(max_seconds, MAX_SECONDS)
        self.server_hostname, self.host_name = server_hostname, host_header or server_hostname
        self.context = tls_context(cafile) if any(t[0] == "https" for t in self.targets) else None
        self.conns = [_Conn(t) for t in self.targets for _ in range(connections)]
        self.counts: Counter = Counter()
        self.held = self.max_held = 0
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._reserved = False

    # -- the `with` block --------------------------------------------------------------

    def __enter__(self) -> "SlowClients":
        _reserve(self.total)
        self._reserved = True
        _ensure_fds(self.total + 256)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._reserved:
            _release(self.total)
            self._reserved = False

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait_held(self, count: int | None = None, timeout: float = 5.0) -> bool:
        """Wait until `count` (default: all) connections are held; False if they are not."""
        deadline = time.monotonic() + timeout
        while self.held < (self.total if count is None else count):
            if time.monotonic() >= deadline or not self.running:
                return False
            time.sleep(0.02)
        return True

    def stats(self) -> dict:
        return {"held": self.held, "max_held": self.max_held, "opened": self.counts["opened"],
                "closed_by_server": self.counts["closed_by_server"],
                "reconnections": self.counts["reconnections"],
                "connect_failures": self.counts["connect_failures"],
                "header_lines_sent": self.counts["lines"], "running": self.running}

    # -- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                now = time.monotonic()
                for conn in self.conns:
                    self._tend(conn, now)
                for key, _ in self._selector.select(TICK):
                    self._ready(key.data)
        finally:
            for conn in self.conns:
                self._drop(conn)
            self._selector.close()

    def _tend(self, conn: _Conn, now: float) -> None:
        if conn.state == "idle" and now >= conn.due:
            self._connect(conn, now)
        elif conn.state in ("connecting", "handshake") and now - conn.started > CONNECT_TIMEOUT:
            self._failed(conn)
        elif conn.state == "open" and now >= conn.due:
            conn.lines += 1
            self._send(conn, f"X-Slow-{conn.lines}: {conn.lines}\r\n")
            conn.due = now + self.trickle_every

    def _connect(self, conn: _Conn, now: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        error = sock.connect_ex(conn.target[1:3])
        if error not in (0, errno.EINPROGRESS):
            sock.close()
            self.counts["connect_failures"] += 1
            conn.due = now + RETRY_AFTER
            return
        conn.sock, conn.state, conn.started = sock, "connecting", now
        self._selector.register(sock, selectors.EVENT_WRITE, conn)

    def _ready(self, conn: _Conn) -> None:
        if conn.state == "connecting":
            if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._failed(conn)
            elif conn.target[0] == "https":
                self._start_tls(conn)
            else:
                self._opened(conn)
        elif conn.state == "handshake":
            self._handshake(conn)
        elif conn.state == "open":
            self._read(conn)

    def _start_tls(self, conn: _Conn) -> None:
        self._selector.unregister(conn.sock)
        conn.sock = self.context.wrap_socket(
            conn.sock, server_hostname=self.server_hostname or conn.target[1],
            do_handshake_on_connect=False)
        conn.state = "handshake"
        self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
        self._handshake(conn)

    def _handshake(self, conn: _Conn) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        except ssl.SSLWantWriteError:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        except OSError:  # ssl.SSLError included
            self._failed(conn)
        else:
            self._opened(conn)

    def _opened(self, conn: _Conn) -> None:
        scheme, host, port, path = conn.target
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        conn.state, conn.due, conn.lines = "open", time.monotonic() + self.trickle_every, 0
        self.counts["opened"] += 1
        if conn.was_held:
            self.counts["reconnections"] += 1
        conn.was_held = True
        self.held += 1
        self.max_held = max(self.max_held, self.held)
        name = host_header(host, port, scheme, self.host_name)
        self._send(conn, f"GET {path} HTTP/1.1\r\nHost: {name}\r\n")

    def _send(self, conn: _Conn, text: str) -> None:
        try:
            conn.sock.send(text.encode())
            self.counts["lines"] += 1
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass  # the server reads nothing: fine, that line is simply not sent
        except OSError:
            self._closed_by_server(conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(4096)  # an answer (400, 408) or the end: either way, done
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self._closed_by_server(conn)

    def _closed_by_server(self, conn: _Conn) -> None:
        self.counts["closed_by_server"] += 1
        self._drop(conn)
        conn.due = time.monotonic() + RECONNECT_AFTER

    def _failed(self, conn: _Conn) -> None:
        self.counts["connect_failures"] += 1
        self._drop(conn)
        conn.due = time.monotonic() + RETRY_AFTER

    def _drop(self, conn: _Conn) -> None:
        if conn.sock is None:
            return
        if conn.state == "open":
            self.held -= 1
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        conn.sock, conn.state = None, "idle"


# -- the probe -------------------------------------------------------------------------


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with another name for SNI and verification (curl --resolve)."""

    def __init__(self, host, port, *, server_hostname=None, **kwargs):
        super().__init__(host, port, **kwargs)
        self.server_hostname = server_hostname

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock,
                                              server_hostname=self.server_hostname or self.host)


def get(target, timeout: float, context=None, name=None, server_hostname=None) -> str:
    """One GET on a new connection: "ok" or what went wrong."""
    scheme, host, port, path = target
    if scheme == "https":
        connection = _HTTPSConnection(host, port, timeout=timeout, context=context,
                                      server_hostname=server_hostname)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Connection": "close", "Host": host_header(host, port, scheme, name)}
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return "ok" if 200 <= response.status < 400 else f"http_{response.status}"
    except TimeoutError:
        return "timeout"
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


def summary(outcomes: Counter, latencies: list[float], max_gap: float) -> dict:
    requests = sum(outcomes.values())
    return {
        "requests": requests, "ok": outcomes["ok"], "failed": requests - outcomes["ok"],
        "max_latency_s": round(max(latencies, default=0.0), 3),
        "p50_latency_s": round(statistics.median(latencies), 3) if latencies else 0.0,
        "over_1s": sum(1 for latency in latencies if latency > 1.0),
        "max_gap_s": round(max_gap, 3),
        "failures": {k: v for k, v in outcomes.items() if k != "ok"},
    }


def probe(urls, seconds: float, interval: float = 0.2, timeout: float = 5.0, *,
          cafile: str | None = None, host_header: str | None = None,
          server_hostname: str | None = None) -> dict:
    """GET each URL in turn, a new connection each, for `seconds`; the figures as a dict.

    Latency is the time to the full response, or to the failure (so a timeout counts
    as at least `timeout`); max_gap_s is the longest stretch in which every request failed.
    """
    targets = [target(u) for u in ([urls] if isinstance(urls, str) else urls)]
    context = tls_context(cafile) if any(t[0] == "https" for t in targets) else None
    name = host_header or server_hostname
    outcomes: Counter = Counter()
    latencies: list[float] = []
    failing_since, max_gap = None, 0.0
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        start = time.monotonic()
        outcome = get(targets[i % len(targets)], timeout, context, name, server_hostname)
        now = time.monotonic()
        outcomes[outcome] += 1
        latencies.append(now - start)
        if outcome != "ok":
            failing_since = start if failing_since is None else failing_since
        elif failing_since is not None:
            max_gap, failing_since = max(max_gap, start - failing_since), None
        i += 1
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    if failing_since is not None:
        max_gap = max(max_gap, time.monotonic() - failing_since)
    return summary(outcomes, latencies, max_gap)


# -- the command -----------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--connections", type=int, default=200, help="slow clients per URL")
    parser.add_argument("--seconds", type=float, default=30, help="how long to probe")
    parser.add_argument("--trickle", type=float, default=5.0, help="seconds between header lines")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=5.0, help="probe timeout")
    parser.add_argument("--cafile")
    parser.add_argument("--host-header")
    parser.add_argument("--server-hostname", help="name for TLS SNI and verification")
    args = parser.parse_args(argv)
    if args.seconds > MAX_SECONDS - 30:
        parser.error(f"--seconds: at most {MAX_SECONDS - 30:g}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tls = {"cafile": args.cafile, "host_header": args.host_header,
           "server_hostname": args.server_hostname}
    with SlowClients(args.urls, args.connections, args.trickle,
                     max_seconds=args.seconds + 30, **tls) as slow:
        slow.wait_held(timeout=10)
        held_at_start = slow.held
        result = probe(args.urls, args.seconds, args.interval, args.timeout, **tls)
        stats = slow.stats()
    print(json.dumps({"urls": args.urls, "connections_per_url": args.connections,
                      "held_at_start": held_at_start, "probe": result, "slow": stats}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
