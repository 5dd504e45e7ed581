"""Why Caddy: what the front door costs and what it buys, measured on one fleet host.

The deploy puts Caddy (Debian's) in front of gunicorn on every app host. This measures,
in one run on the first web host of a local fleet where the project is deployed already:

- requests per second on the sample app's home page (GET /), and p50/p99 latency,
  (a) straight to gunicorn (127.0.0.1:app_port), (b) through Caddy, the deploy's front
  (127.0.0.1:80), (c) through Debian's nginx as the classic Django tutorial sets it up (a
  plain reverse proxy, proxy_http_version 1.1, on 127.0.0.1:8081) and (d) through Debian's
  HAProxy (mode http, 127.0.0.1:8082); two series, a new connection per request (as
  fleet/load.py does) and keep-alive (one http.client connection per thread, reused);
  every target twice, interleaved (a b c d a b c d), the median and the ratio to (a) of
  the same run;
- slow-client resilience: fleet/slow.py's slow clients (default 200) held on each target
  while a probe asks it GET / every 0.2 s with a 1 s timeout: how many probes answered.

The load runs ON the host, over loopback (this file and fleet/{load,slow}.py are
uploaded and run with the host's python3, stdlib only), so the link between this machine
and the host is not measured; client and servers share the host's cores, the same way
for every target, which is why the ratios, not the absolute figures, are the result.
nginx and HAProxy are installed with apt (the fleet's apt proxy) and configured here,
then stopped and disabled at the end, so a later deploy's no-op is still a no-op.

    .venv/bin/python bench/front.py --fleet bench [--seconds 10] [--threads 8]

Prints a markdown table and writes bench/results/front.md and bench/results/front.json.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"
FLEETS = Path(os.environ.get("DJDEPLOY_FLEET_DIR", "/var/lib/djdeploy/fleets"))
REMOTE = "/tmp/djdeploy-frontbench"  # on the host: this file and fleet/; removed at the end
UPLOAD = {"front.py": "bench/front.py", "fleet/__init__.py": "fleet/__init__.py",
          "fleet/load.py": "fleet/load.py", "fleet/slow.py": "fleet/slow.py"}
# name, port on 127.0.0.1, what it is
TARGETS = [
    ("gunicorn", 8000, "straight to gunicorn (no front)"),
    ("caddy", 80, "Caddy, the deploy's front"),
    ("nginx", 8081, "nginx, the classic tutorial's proxy"),
    ("haproxy", 8082, "HAProxy, mode http"),
]
SERIES = [("close", "new connection per request"), ("keepalive", "keep-alive")]

NGINX_SITE = """\
# djdeploy bench/front.py: the classic Django tutorial's nginx, a plain reverse proxy.
server {
    listen 127.0.0.1:8081;
    access_log off;  # as Caddy (no log directive) and HAProxy (no log line) here
    location / {
        include proxy_params;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:8000;
    }
}
"""
HAPROXY_CFG = """\
# djdeploy bench/front.py: HAProxy as a plain reverse proxy to gunicorn.
global
    user haproxy
    group haproxy
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
frontend bench
    bind 127.0.0.1:8082
    default_backend django
backend django
    server gunicorn 127.0.0.1:8000
"""
INSTALL = f"""\
set -e
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s nginx haproxy >/dev/null 2>&1; then
    # Installed without starting: Debian's nginx would take port 80, which is Caddy's.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    install="apt-get install -y -q --no-install-recommends nginx haproxy"
    $install >/dev/null || {{ apt-get update -q >/dev/null && $install >/dev/null; }}
fi
rm -f /etc/nginx/sites-enabled/default
cat >/etc/nginx/conf.d/djdeploy-frontbench.conf <<'EOF'
{NGINX_SITE}EOF
cat >/etc/haproxy/haproxy.cfg <<'EOF'
{HAPROXY_CFG}EOF
nginx -t -q
haproxy -c -q -f /etc/haproxy/haproxy.cfg
systemctl restart nginx haproxy
"""
CLEANUP = f"systemctl disable --now -q nginx haproxy || true; rm -rf {REMOTE}"
VERSIONS = ("echo cores $(nproc); python3 -V; echo caddy $(caddy version); nginx -v 2>&1; "
            "haproxy -v | head -1 | cut -d' ' -f1-3; "
            "ls -d /srv/*/current/venv/lib/python3*/site-packages/gunicorn-* "
            "/srv/*/current/venv/lib/python3*/site-packages/[Dd]jango-* | xargs -n1 basename; "
            "echo gunicorn workers $(( $(ps -C gunicorn --no-headers | wc -l) - 1 )), sync")


# -- on the host: the load generator ----------------------------------------------------


def get(connection: http.client.HTTPConnection, path: str, keepalive: bool) -> str:
    """One GET / on `connection`: "ok" or what went wrong."""
    try:
        connection.request("GET", path, headers={} if keepalive else {"Connection": "close"})
        response = connection.getresponse()
        response.read()
        return "ok" if response.status == 200 else f"http_{response.status}"
    except TimeoutError:
        connection.close()
        return "timeout"
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        return type(error).__name__


def worker(url: str, keepalive: bool, window: tuple[float, float], out: list, counts: Counter) -> None:
    """GET `url` until the window ends; (outcome, latency) of each request inside it, and
    the connections opened inside it (this thread's own `counts`)."""
    parts = urlsplit(url)
    start, end = window
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    while True:
        begin = time.monotonic()
        if begin >= end:
            break
        new = connection.sock is None  # http.client connects again when the last one closed
        outcome = get(connection, parts.path or "/", keepalive)
        if not keepalive:
            connection.close()
        finish = time.monotonic()
        if begin >= start and finish <= end:
            out.append((outcome, finish - begin))
            counts["connections"] += new
    connection.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def load(url: str, seconds: float, threads: int, warmup: float, keepalive: bool) -> dict:
    """`threads` clients on `url` for warmup + seconds; figures for the last `seconds`."""
    window = (time.monotonic() + warmup, time.monotonic() + warmup + seconds)
    outs, counts = [[] for _ in range(threads)], [Counter() for _ in range(threads)]
    pool = [threading.Thread(target=worker, args=(url, keepalive, window, out, count), daemon=True)
            for out, count in zip(outs, counts)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(warmup + seconds + 15)
    done = [item for out in outs for item in out]
    outcomes = Counter(outcome for outcome, _ in done)
    latencies = [latency for outcome, latency in done if outcome == "ok"]
    return {"requests": len(done), "ok": outcomes["ok"], "failed": len(done) - outcomes["ok"],
            "failures": {k: v for k, v in outcomes.items() if k != "ok"},
            "rps": round(outcomes["ok"] / seconds, 1), "connections": sum(c["connections"] for c in counts),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


def wait(urls: list[str], timeout: float) -> dict:
    """Wait until every URL answers 200; the status each gave last."""
    deadline, last = time.monotonic() + timeout, {}
    for url in urls:
        parts = urlsplit(url)
        while True:
            connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=5)
            last[url] = get(connection, parts.path or "/", False)
            connection.close()
            if last[url] == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return last


def host_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="front.py host")
    parser.add_argument("what", choices=["load", "wait"])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--keepalive", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "wait":
        print(json.dumps(wait(args.urls, args.seconds)))
    else:
        print(json.dumps(load(args.urls[0], args.seconds, args.threads, args.warmup, args.keepalive)))
    return 0


# -- on this machine: the run ------------------------------------------------------------


class Host:
    """The fleet host, over SSH with the fleet's key."""

    def __init__(self, fleet: str):
        path = FLEETS / fleet / "state.json"
        if not path.exists():
            raise SystemExit(f"front: no fleet {fleet!r} ({path}): boot it with python -m fleet.hosts up")
        state = json.loads(path.read_text())
        web = [h for h in state["hosts"] if h["group"] == "web"]
        if not web:
            raise SystemExit(f"front: fleet {fleet!r} has no web host")
        self.key, self.address, self.name = state["key"], web[0]["address"], web[0]["machine"]

    def run(self, command: str, stdin: bytes | None = None, timeout: float = 120) -> str:
        sys.path.insert(0, str(ROOT))
        from fleet.base import SSH_OPTIONS

        result = subprocess.run(["ssh", "-i", self.key, *SSH_OPTIONS, f"root@{self.address}", command],
                                input=stdin, capture_output=True, timeout=timeout)
        if result.returncode != 0:
            raise SystemExit(f"front: {self.name}: `{command[:80]}` exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace').strip()[-2000:]}")
        return result.stdout.decode()

    def json(self, command: str, timeout: float = 120) -> dict:
        return json.loads(self.run(command, timeout=timeout).strip().splitlines()[-1])


def archive() -> bytes:
    """This file and fleet/{load,slow}.py, as a tar.gz to unpack in REMOTE."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, source in UPLOAD.items():
            tar.add(ROOT / source, arcname=name)
    return buffer.getvalue()


def prepare(host: Host) -> dict:
    """Upload the load generator, install and start nginx and HAProxy; versions and cores."""
    host.run(f"rm -rf {REMOTE} && mkdir -p {REMOTE} && tar -xz -C {REMOTE}", stdin=archive())
    print("installing nginx and haproxy (apt) ...", flush=True)
    host.run("bash -s", stdin=INSTALL.encode(), timeout=600)
    urls = " ".join(url(port) for _, port, _ in TARGETS)
    status = host.json(f"python3 {REMOTE}/front.py host wait {urls} --seconds 30")
    if any(s != "ok" for s in status.values()):
        raise SystemExit(f"front: not every target answers GET / with 200: {status}")
    return {"host": host.name, "versions": host.run(VERSIONS).strip().splitlines()}


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}/"


def throughput(host: Host, args) -> list[dict]:
    """Every series on every target, `rounds` times, interleaved."""
    runs = []
    for round_ in range(1, args.rounds + 1):
        for series, _ in SERIES:
            for name, port, _ in TARGETS:
                flag = " --keepalive" if series == "keepalive" else ""
                result = host.json(f"python3 {REMOTE}/front.py host load {url(port)} --seconds {args.seconds} "
                                   f"--warmup {args.warmup} --threads {args.threads}{flag}",
                                   timeout=args.seconds + args.warmup + 60)
                runs.append({"round": round_, "series": series, "target": name, **result})
                print(f"  round {round_}  {series:9} {name:8} {result['rps']:8.1f} rps  "
                      f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  "
                      f"failed {result['failed']}", flush=True)
    return runs


def slow_clients(host: Host, args) -> dict:
    """fleet/slow.py on each target: slow clients held, a probe with a 1 s timeout."""
    results = {}
    for name, port, _ in TARGETS:
        result = host.json(f"cd {REMOTE} && python3 -m fleet.slow {url(port)} --connections {args.slow} "
                           f"--seconds {args.seconds} --interval 0.2 --timeout 1",
                           timeout=args.seconds + 90)
        results[name] = result
        probe = result["probe"]
        print(f"  slow clients  {name:8} held {result['held_at_start']:4}  probes answered within 1 s: "
              f"{probe['ok']}/{probe['requests']}", flush=True)
        host.json(f"python3 {REMOTE}/front.py host wait {url(port)} --seconds 60")  # back to normal
    return results


def pick(runs: list[dict], target: str, series: str) -> list[dict]:
    return [r for r in runs if r["target"] == target and r["series"] == series]


def series_figures(runs: list[dict], name: str, series: str) -> dict:
    """One target's series: medians over the rounds, and its ratio to gunicorn in each round
    (the run next to it in time: the other load on the machine drifts between rounds)."""
    mine, base = pick(runs, name, series), {r["round"]: r["rps"] for r in pick(runs, "gunicorn", series)}
    ratios = [r["rps"] / base[r["round"]] for r in mine if base.get(r["round"])]
    return {
        "rps_runs": [r["rps"] for r in mine], "rps": round(statistics.median(r["rps"] for r in mine), 1),
        "x_gunicorn_runs": [round(x, 2) for x in ratios],
        "x_gunicorn": round(statistics.median(ratios), 2) if ratios else None,
        "p50_ms": round(statistics.median(r["p50_ms"] for r in mine), 1),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in mine), 1),
        "failed": sum(r["failed"] for r in mine),
        "connections_per_request": round(sum(r["connections"] for r in mine)
                                         / max(1, sum(r["requests"] for r in mine)), 2),
    }


def summary(runs: list[dict], slow: dict) -> list[dict]:
    rows = []
    for name, port, what in TARGETS:
        row = {"target": name, "port": port, "what": what}
        for series, _ in SERIES:
            row[series] = series_figures(runs, name, series)
        probe = slow.get(name, {}).get("probe")
        row["slow"] = {"ok": probe["ok"], "probes": probe["requests"]} if probe else None
        rows.append(row)
    return rows


def markdown(rows: list[dict], meta: dict, args) -> str:
    lines = [f"Front doors on one fleet host ({meta['host']}), {args.threads} client threads on the host "
             f"over loopback, {args.seconds:g} s per run after {args.warmup:g} s of warm-up, "
             f"{args.rounds} interleaved rounds (median, and the range over the rounds; a ratio is against "
             "gunicorn's run of the same round); GET / of the sample app.", "",
             "| target | rps, new conn. each | x gunicorn | p50 / p99 ms | rps, keep-alive | x gunicorn "
             "| p50 / p99 ms | failed | slow clients: probes answered < 1 s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row['target']} (:{row['port']})"]
        for series, _ in SERIES:
            s = row[series]
            runs, ratios = s["rps_runs"], s["x_gunicorn_runs"]
            cells += [f"{s['rps']:.0f} ({min(runs):.0f}-{max(runs):.0f})",
                      f"{s['x_gunicorn']:.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                      f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f}"]
        cells.append(str(row["close"]["failed"] + row["keepalive"]["failed"]))
        cells.append(f"{row['slow']['ok']}/{row['slow']['probes']}" if row["slow"] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    reuse = ", ".join(f"{r['target']} {r['keepalive']['connections_per_request']:.2f}" for r in rows)
    lines += ["", f"Keep-alive, connections opened per request: {reuse} (gunicorn's sync workers "
              "close every connection).", "",
              f"Slow clients: {args.slow} held on the target (fleet/slow.py: headers never finished, "
              "one line every 5 s) while a probe asks GET / every 0.2 s, 1 s timeout.", "",
              "Host: " + "; ".join(meta["versions"]) + f". Measured {meta['date']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["host"]:
        return host_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each target, interleaved")
    parser.add_argument("--slow", type=int, default=200, help="slow clients held per target")
    args = parser.parse_args(argv)
    host = Host(args.fleet)
    try:
        meta = prepare(host)
        meta["date"] = time.strftime("%Y-%m-%d %H:%M")
        print(f"throughput on {host.name}:", flush=True)
        runs = throughput(host, args)
        print("slow clients:", flush=True)
        slow = slow_clients(host, args)
    finally:
        host.run(CLEANUP)  # nginx and HAProxy stopped and disabled, the uploaded files gone
    rows = summary(runs, slow)
    text = markdown(rows, meta, args)
    print("\n" + text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "front.md").write_text(text + "\n")
    (OUT / "front.json").write_text(json.dumps({"settings": vars(args), **meta, "summary": rows,
                                                "runs": runs, "slow_clients": slow}, indent=1) + "\n")
    print(f"\nwrote {OUT / 'front.md'} and {OUT / 'front.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
