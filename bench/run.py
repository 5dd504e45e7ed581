"""`make bench`: what a deploy costs, on the local fleet and on 1,000 simulated hosts.

On a fleet of its own (1, 4 and 8 hosts): the floor (`pyinfra inventory.py exec --
true`: one SSH round trip plus pyinfra's start-up), a first deploy, a no-op redeploy
(with the batched facts, and without them as the baseline), `--dry` on an unchanged
fleet, a code-only redeploy and a rollback; the median of RUNS runs each, remote
commands per host for the no-op, and the controller's peak memory. Then pyinfra's
@fake connector with a fixed per-command delay replays a real host's state for up to
1,000 hosts: the controller's own cost per host of a no-op. Ratios are against the
floor measured in the same run. Prints a table, writes bench/results/results.csv and
bench/results/time-vs-hosts.png.
"""

from __future__ import annotations

import compileall
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import app_version  # noqa: E402  (project copies with new code)

from djdeploy.speed.factcache import plan_file  # noqa: E402
from fleet import hosts as fleet_tool  # noqa: E402

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
FLEET = "bench"
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "1,4,8").split(",")]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
FAKE_SIZES = [int(n) for n in os.environ.get("BENCH_FAKE_SIZES", "10,100,250,500,1000").split(",")]
FAKE_DELAY = 0.02  # seconds per simulated remote command
OUT = ROOT / "bench" / "results"
BENCH_DATA = ["--data", 'allowed_hosts=["bench.invalid", "localhost"]']  # same files on every host


def timed(args, cwd=ROOT, env=None):
    """Run a command; (seconds, peak RSS in MiB, output)."""
    environ = dict(os.environ, DJDEPLOY_FLEET=FLEET, **(env or {}))
    started = time.monotonic()
    result = subprocess.run(["/usr/bin/time", "-f", "@@maxrss %M", *args], cwd=cwd, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: `{' '.join(args)}` failed:\n{result.stdout[-3000:]}")
    rss = int(re.search(r"@@maxrss (\d+)", result.stdout).group(1)) / 1024
    return seconds, rss, result.stdout


def deploy(*args, cwd=ROOT, deploy_file="deploy.py", env=None):
    return timed([PYINFRA, "-y", "inventory.py", deploy_file, *BENCH_DATA, *args], cwd=cwd, env=env)


def commands_per_host(output: str) -> int:
    counts = [int(n) for n in re.findall(r"^remote commands: \S+ (\d+)$", output, re.M)]
    return max(counts) if counts else -1


def median(values):
    return round(statistics.median(values), 3)


def measure_fleet(size: int, work: Path) -> list[dict]:
    rows = []

    def record(case, seconds, rss, commands=None):
        rows.append({"hosts": size, "case": case, "seconds": median(seconds), "peak_mib": round(max(rss)),
                     "commands_per_host": commands})
        print(f"  {size} hosts  {case:28} {median(seconds):7.3f} s", flush=True)

    seconds, rss = [], []
    for _ in range(RUNS):  # every first deploy on fresh hosts
        fleet_tool.down([FLEET])
        fleet_tool.up(FLEET, size, "bookworm", timeout=240)
        s, m, _ = deploy()
        seconds.append(s)
        rss.append(m)
    record("first deploy", seconds, rss)

    deploy()  # the batch learns which facts this deploy asks
    for case, env in (("no-op redeploy", {}), ("no-op, facts not batched", {"DJDEPLOY_FACT_BATCH": "off"})):
        seconds, rss, commands = [], [], []
        for _ in range(RUNS):
            s, m, out = deploy(env={"DJDEPLOY_COUNT_COMMANDS": "1", **env})
            assert "Grand total" in out and re.search(r"Grand total\s+\d+\s+-\s+-", out), out[-2000:]
            seconds.append(s)
            rss.append(m)
            commands.append(commands_per_host(out))
        record(case, seconds, rss, max(commands))

    seconds, rss = [], []
    for _ in range(RUNS):
        s, m, _ = timed([PYINFRA, "inventory.py", "deploy.py", *BENCH_DATA, "--dry"])
        seconds.append(s)
        rss.append(m)
    record("--dry, unchanged", seconds, rss)

    seconds, rss = [], []
    for run in range(RUNS):
        version = app_version(work / f"{size}-v{run}", f"bench-{size}-{run}")
        s, m, _ = deploy(cwd=version)
        seconds.append(s)
        rss.append(m)
    record("code-only redeploy", seconds, rss)

    seconds, rss = [], []
    for _ in range(RUNS):
        s, m, _ = deploy(deploy_file="rollback.py")
        seconds.append(s)
        rss.append(m)
    record("rollback", seconds, rss)

    seconds, rss = [], []
    for _ in range(RUNS):
        s, m, _ = timed([PYINFRA, "-y", "inventory.py", "exec", "--", "true"])
        seconds.append(s)
        rss.append(m)
    record("floor (exec -- true)", seconds, rss)
    return rows


def measure_fake(work: Path) -> list[dict]:
    """A no-op on N simulated hosts that answer like a deployed real one."""
    fleet_tool.down([FLEET])
    fleet_tool.up(FLEET, 1, "bookworm", timeout=240)
    deploy()
    deploy()  # learn the facts
    reply = work / "batch-reply.txt"
    deploy(env={"DJDEPLOY_RECORD_BATCH": str(reply)})
    plan = reply.with_suffix(".plan.json").read_text()  # the facts, in the order of the reply
    rows = []
    for size in FAKE_SIZES:
        for n in range(1, size + 1):
            path = plan_file(f"@fake/web-{n}", "deploy.py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(plan)
        env = dict(DJDEPLOY_FAKE_HOSTS=str(size), DJDEPLOY_FAKE_REPLY=str(reply),
                   DJDEPLOY_FAKE_DELAY=str(FAKE_DELAY), DJDEPLOY_COUNT_COMMANDS="1")
        seconds, rss, out = timed([PYINFRA, "-y", "tests/fake_fleet.py", "deploy.py", *BENCH_DATA], env=env)
        assert re.search(r"Grand total\s+\d+\s+-\s+-", out), out[-3000:]  # a true no-op
        rows.append({"hosts": size, "case": "simulated no-op (@fake)", "seconds": round(seconds, 3),
                     "peak_mib": round(rss), "commands_per_host": commands_per_host(out)})
        print(f"  {size} simulated hosts: {seconds:.2f} s, {rss:.0f} MiB", flush=True)
    for n in range(1, max(FAKE_SIZES) + 1):
        plan_file(f"@fake/web-{n}", "deploy.py").unlink(missing_ok=True)
    return rows


def table(rows: list[dict]) -> str:
    floors = {r["hosts"]: r["seconds"] for r in rows if r["case"].startswith("floor")}
    lines = [f"{'hosts':>5}  {'case':28} {'seconds':>8} {'x floor':>8} {'peak MiB':>9} {'cmds/host':>9}"]
    for r in rows:
        ratio = f"{r['seconds'] / floors[r['hosts']]:.2f}" if r["hosts"] in floors else "-"
        commands = r["commands_per_host"] if r["commands_per_host"] not in (None, -1) else "-"
        lines.append(f"{r['hosts']:>5}  {r['case']:28} {r['seconds']:>8.3f} {ratio:>8} "
                     f"{r['peak_mib']:>9} {commands!s:>9}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for case in dict.fromkeys(r["case"] for r in rows if not r["case"].startswith("simulated")):
        points = [(r["hosts"], r["seconds"]) for r in rows if r["case"] == case]
        left.plot(*zip(*points), marker="o", label=case)
    left.set(xlabel="hosts (local fleet)", ylabel="seconds (median)", title="Deploys on the local fleet")
    left.legend(fontsize=7)
    fake = [(r["hosts"], r["seconds"]) for r in rows if r["case"].startswith("simulated")]
    if fake:
        right.plot(*zip(*fake), marker="o", color="tab:purple")
    right.set(xlabel="simulated hosts (@fake, 20 ms per command)", ylabel="seconds",
              title="No-op: the controller's own cost")
    fig.suptitle(f"djdeploy benchmark, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    # Bytecode for the project's modules, as a first run writes it on a usual install (a
    # PYTHONDONTWRITEBYTECODE environment would have every run compile them again).
    compileall.compile_dir(str(ROOT / "djdeploy"), quiet=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            for size in SIZES:
                print(f"local fleet, {size} host(s):", flush=True)
                rows += measure_fleet(size, work)
            print("simulated hosts:", flush=True)
            rows += measure_fake(work)
        finally:
            fleet_tool.down([FLEET])
    text = table(rows)
    print("\n" + text)
    (OUT / "results.txt").write_text(text + "\n")
    with open(OUT / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, OUT / "time-vs-hosts.png")
    print(f"\nwrote {OUT / 'results.csv'} and {OUT / 'time-vs-hosts.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
