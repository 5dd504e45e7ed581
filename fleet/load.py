"""A bounded HTTP load for zero-downtime checks: a new connection per request, every
outcome counted, only against loopback or the local fleet's link-local addresses.

    python -m fleet.load http://169.254.1.2/ http://169.254.2.2/ --seconds 60

Runs until SIGTERM/SIGINT, --seconds or --requests, then prints one JSON object:
{"requests", "ok", "failed", "failures": {kind: n}, "max_gap_s", "answers": {marker: n}}.
A failure is a refused or reset connection, a timeout, or a non-2xx answer; max_gap_s
is the longest stretch during which every request failed.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import signal
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

ALLOWED = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("169.254.0.0/16")]


def check_target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    address = ipaddress.ip_address(parts.hostname or "")
    if not any(address in net for net in ALLOWED) or str(address) == "169.254.169.254":
        raise SystemExit(f"load: {url} is not loopback or a local fleet address: refusing")
    return parts.hostname, parts.port or 80, parts.path or "/"


class Load:
    def __init__(self, urls, concurrency, timeout, max_requests, markers, pause=0.0):
        self.targets = [check_target(u) for u in urls]
        self.concurrency, self.timeout, self.max_requests = concurrency, timeout, max_requests
        self.pause = pause
        self.markers = markers
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: Counter = Counter()
        self.answers: Counter = Counter()
        self.count = 0
        self.failing_since = None
        self.max_gap = 0.0

    def record(self, outcome: str, body: bytes = b"") -> None:
        now = time.monotonic()
        with self.lock:
            self.outcomes[outcome] += 1
            for marker in self.markers:
                if marker.encode() in body:
                    self.answers[marker] += 1
            if outcome == "ok":
                if self.failing_since is not None:
                    self.max_gap = max(self.max_gap, now - self.failing_since)
                self.failing_since = None
            elif self.failing_since is None:
                self.failing_since = now

    def one(self, host: str, port: int, path: str) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            connection.request("GET", path, headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read()
            self.record("ok" if 200 <= response.status < 300 else f"http_{response.status}", body)
        except ConnectionRefusedError:
            self.record("refused")
        except ConnectionResetError:
            self.record("reset")
        except TimeoutError:
            self.record("timeout")
        except (OSError, http.client.HTTPException) as error:
            self.record(type(error).__name__)
        finally:
            connection.close()

    def worker(self, offset: int) -> None:
        i = offset
        while not self.stop.is_set():
            with self.lock:
                if self.count >= self.max_requests:
                    return
                self.count += 1
            self.one(*self.targets[i % len(self.targets)])
            i += 1
            if self.pause:
                self.stop.wait(self.pause)

    def run(self, seconds: float) -> dict:
        threads = [threading.Thread(target=self.worker, args=(n,), daemon=True)
                   for n in range(self.concurrency)]
        for thread in threads:
            thread.start()
        self.stop.wait(seconds)
        self.stop.set()
        for thread in threads:
            thread.join(self.timeout + 1)
        if self.failing_since is not None:
            self.max_gap = max(self.max_gap, time.monotonic() - self.failing_since)
        requests = sum(self.outcomes.values())
        return {
            "requests": requests, "ok": self.outcomes["ok"], "failed": requests - self.outcomes["ok"],
            "failures": {k: v for k, v in self.outcomes.items() if k != "ok"},
            "max_gap_s": round(self.max_gap, 3), "answers": dict(self.answers),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=120, help="stop after this long at most")
    parser.add_argument("--requests", type=int, default=100_000, help="stop after this many at most")
    parser.add_argument("--marker", action="append", default=[], help="count answers containing it")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds each client waits between requests (a steady load, not the most the host takes)")
    args = parser.parse_args(argv)
    load = Load(args.urls, args.concurrency, args.timeout, args.requests, args.marker, args.pause)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: load.stop.set())
    print(json.dumps(load.run(args.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
