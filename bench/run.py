"""`make bench`: what a deploy costs on the local fleet, against the floor and against Ansible.

Measured in one run, on fleets of stock Debian 12 hosts (fleet/hosts.py), with the load
average beside every figure:

- the floor: `pyinfra inventory.py exec -- true` on the same hosts (one SSH round trip and
  pyinfra's start-up), interleaved with every no-op so both see the same machine;
- the no-op redeploy (a settled fleet), the no-op with every host planned
  (DJDEPLOY_SETTLED=off), and Ansible's no-op of the seed's recipe (bench/ansible/);
- the first deploy on fresh stock hosts, this project against Ansible's playbook, in
  alternating order round by round, each on freshly booted hosts; where our seconds go,
  step by step (wall time, and the slowest and fastest host of each step);
- a code-only redeploy at 1, 4 and 8 hosts, with the share of each step, and the share of
  the work a release cannot skip (the release itself: upload, unpack, check, migrate,
  collectstatic; and the switch with its health gate).

Every case reports its median, min and max over BENCH_RUNS runs (BENCH_FIRST_RUNS for first
deploys, BENCH_ANSIBLE_NOOP_RUNS for Ansible's slow no-op). Results go to bench/results/:
results.txt (the tables), results.csv, steps.csv and machine.txt.
"""

from __future__ import annotations

import compileall
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import app_version  # noqa: E402  (project copies with new code)

from fleet import hosts as fleet_tool  # noqa: E402
from fleet.base import STATE_DIR  # noqa: E402

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
ANSIBLE = ROOT / "bench" / ".ansible-venv" / "bin" / "ansible-playbook"
PLAYBOOK = ROOT / "bench" / "ansible"
OURS, THEIRS = "bench", "bench-ansible"
SIZE = int(os.environ.get("BENCH_HOSTS", "8"))
CODE_SIZES = [int(n) for n in os.environ.get("BENCH_CODE_SIZES", "1,4,8").split(",")]
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
FIRST_RUNS = int(os.environ.get("BENCH_FIRST_RUNS", "3"))
ANSIBLE_NOOP_RUNS = int(os.environ.get("BENCH_ANSIBLE_NOOP_RUNS", "3"))
OUT = ROOT / "bench" / "results"
BENCH_DATA = ["--data", 'allowed_hosts=["bench.invalid", "localhost"]']  # same files on every host
# The steps of a code-only release that no deploy can skip.
UNAVOIDABLE = ("Release", "Migrations", "Switch to the release")


def load() -> float:
    return os.getloadavg()[0]


def timed(args, cwd=ROOT, env=None, fleet=OURS, steps=False):
    """Run a command; (seconds, load average before, output, steps) where steps, when asked,
    is [(operation, wall seconds, {host: seconds to its answer})] from pyinfra's output."""
    environ = dict(os.environ, DJDEPLOY_FLEET=fleet, **(env or {}))
    before = load()
    started = time.monotonic()
    process = subprocess.Popen(args, cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, stdin=subprocess.DEVNULL)
    lines = []
    for line in process.stdout:
        lines.append((time.monotonic() - started, line.rstrip("\n")))
    process.wait()
    seconds = time.monotonic() - started
    output = "\n".join(line for _, line in lines)
    if process.returncode != 0:
        raise SystemExit(f"bench: `{' '.join(map(str, args))}` failed:\n{output[-3000:]}")
    return seconds, before, output, (step_times(lines, seconds) if steps else None)


def step_times(lines, total):
    """[(operation, wall seconds, {host: seconds from the step's start to its answer})]."""
    found, current, since, hosts = [], None, 0.0, {}
    for at, line in lines:
        started = re.match(r"--> Starting operation: (.+?)\s*$", line)
        if started or line.startswith("--> Results"):
            if current:
                found.append((current, at - since, hosts))
            current, since, hosts = (started.group(1) if started else None), at, {}
            continue
        answer = re.match(r"\s+\[(\S+)\] (Success|No changes|Error|Skipped)", line)
        if current and answer:
            hosts[answer.group(1)] = at - since
    if current:
        found.append((current, total - since, hosts))
    return found


def deploy(*args, cwd=ROOT, env=None, steps=False):
    return timed([PYINFRA, "-y", "inventory.py", "deploy.py", *BENCH_DATA, *args], cwd=cwd, env=env, steps=steps)


def floor():
    return timed([PYINFRA, "-y", "inventory.py", "exec", "--", "true"])


def commands_per_host(output: str) -> int:
    counts = [int(n) for n in re.findall(r"^remote commands: \S+ (\d+)$", output, re.M)]
    return max(counts) if counts else -1


class Ansible:
    """The seed's recipe as an Ansible playbook (bench/ansible/site.yml) on a fleet of its own."""

    def __init__(self, work: Path):
        self.work = work
        self.archive, self.wheels = work / "app.tar.gz", work / "wheels"

    def prepare(self) -> None:
        """What the playbook ships, made before any clock starts (as our build cache is warm):
        the app's files as an archive, and wheels for the hosts' Python (they reach no index)."""
        if not ANSIBLE.exists():
            raise SystemExit(f"bench: {ANSIBLE} missing: run `make bench`, which installs Ansible")
        app = ROOT / "app"
        with tarfile.open(self.archive, "w:gz") as tar:
            for path in sorted(app.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".sqlite3"):
                    tar.add(path, arcname=str(path.relative_to(app)))
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "-r", str(app / "requirements.txt"), "--only-binary=:all:", "--python-version", "3.11",
                        "--platform", "manylinux2014_x86_64", "--implementation", "cp", "-d", str(self.wheels)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def inventory(self) -> Path:
        state = json.loads((STATE_DIR / THEIRS / "state.json").read_text())
        lines = ["[web]", *(f"{h['machine']} ansible_host={h['address']}" for h in state["hosts"]), "",
                 "[web:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={state['key']}"]
        path = self.work / "hosts.ini"
        path.write_text("\n".join(lines) + "\n")
        return path

    def run(self):
        return timed([str(ANSIBLE), "-i", str(self.inventory()), "site.yml",
                      "-e", f"app_archive={self.archive}", "-e", f"wheels_dir={self.wheels}",
                      "-e", f"secret_file={self.work / 'secret_key'}"], cwd=PLAYBOOK,
                     env={"ANSIBLE_CONFIG": str(PLAYBOOK / "ansible.cfg")}, fleet=THEIRS)


def fresh(name: str, size: int) -> None:
    fleet_tool.down([name])
    fleet_tool.up(name, size, "bookworm", timeout=240)


def summary(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


ROWS: list[dict] = []
STEPS: list[dict] = []


def record(hosts, case, seconds, loads, commands=None):
    row = {"hosts": hosts, "case": case, "runs": len(seconds), **summary(seconds),
           "load_median": round(statistics.median(loads), 2), "commands_per_host": commands}
    ROWS.append(row)
    print(f"  {hosts} hosts  {case:34} median {row['median']:8.3f} s  (min {row['min']:.3f}, max {row['max']:.3f}; "
          f"load {row['load_median']:.2f})", flush=True)


def first_deploys(ansible: Ansible) -> None:
    ours, theirs = ([], []), ([], [])
    for run in range(FIRST_RUNS):
        order = ("ours", "theirs") if run % 2 == 0 else ("theirs", "ours")
        for who in order:
            if who == "ours":
                fresh(OURS, SIZE)
                seconds, before, _, steps = deploy(steps=True)
                ours[0].append(seconds)
                ours[1].append(before)
                for name, wall, hosts in steps:
                    STEPS.append({"case": "first deploy", "run": run, "hosts": SIZE, "step": name,
                                  "seconds": round(wall, 3),
                                  "slowest_host": round(max(hosts.values()), 3) if hosts else "",
                                  "fastest_host": round(min(hosts.values()), 3) if hosts else ""})
            else:
                fresh(THEIRS, SIZE)
                seconds, before, _, _ = ansible.run()
                theirs[0].append(seconds)
                theirs[1].append(before)
            print(f"  round {run + 1}: {who}: {seconds:.1f} s", flush=True)
    record(SIZE, "first deploy (this project)", *ours)
    record(SIZE, "first deploy (Ansible playbook)", *theirs)


def no_ops(ansible: Ansible) -> None:
    deploy()  # the facts this deploy asks are learned,
    deploy()  # and a run that changes nothing records each host settled
    cases = {"floor (exec -- true)": ([], []), "no-op redeploy (settled)": ([], []),
             "no-op, every host planned": ([], [])}
    commands = {}
    for _ in range(RUNS):
        for case, env in (("floor (exec -- true)", None), ("no-op redeploy (settled)", {}),
                          ("no-op, every host planned", {"DJDEPLOY_SETTLED": "off"})):
            if env is None:
                seconds, before, _, _ = floor()
            else:
                seconds, before, out, _ = deploy(env={"DJDEPLOY_COUNT_COMMANDS": "1", **env})
                assert re.search(r"Grand total\s+(\d+|-)\s+-\s+-", out), out[-2000:]  # nothing changed
                commands[case] = max(commands.get(case, 0), commands_per_host(out))
            cases[case][0].append(seconds)
            cases[case][1].append(before)
    for case, (seconds, loads) in cases.items():
        record(SIZE, case, seconds, loads, commands.get(case))
    seconds, loads = [], []
    ansible.run()  # its first no-op (the deploy's handlers may still have run)
    for _ in range(ANSIBLE_NOOP_RUNS):
        took, before, out, _ = ansible.run()
        seconds.append(took)
        loads.append(before)
    record(SIZE, "no-op (Ansible playbook)", seconds, loads)


def code_only(size: int, work: Path) -> None:
    if size != SIZE:
        fresh(OURS, size)
        deploy()
    seconds, loads, shares = [], [], {}
    for run in range(RUNS):
        version = app_version(work / f"{size}-v{run}", f"bench-{size}-{run}")
        took, before, _, steps = deploy(cwd=version, steps=True)
        seconds.append(took)
        loads.append(before)
        for name, wall, hosts in steps:
            shares.setdefault(name, []).append(wall)
            STEPS.append({"case": "code-only redeploy", "run": run, "hosts": size, "step": name,
                          "seconds": round(wall, 3),
                          "slowest_host": round(max(hosts.values()), 3) if hosts else "",
                          "fastest_host": round(min(hosts.values()), 3) if hosts else ""})
    record(size, "code-only redeploy", seconds, loads)
    total = statistics.median(seconds)
    must = sum(statistics.median(shares[name]) for name in UNAVOIDABLE if name in shares)
    ROWS[-1]["unavoidable"] = round(must, 3)
    print(f"    unavoidable steps (median): {must:.2f} s; the whole redeploy is {total / must:.2f}x of it",
          flush=True)


def tables() -> str:
    floors = {r["hosts"]: r["median"] for r in ROWS if r["case"].startswith("floor")}
    lines = [f"{'hosts':>5}  {'case':34} {'median s':>9} {'min':>8} {'max':>8} {'x floor':>8} {'load':>6} "
             f"{'cmds/host':>9}"]
    for r in ROWS:
        ratio = f"{r['median'] / floors[r['hosts']]:.2f}" if r["hosts"] in floors else "-"
        commands = r["commands_per_host"] if r["commands_per_host"] not in (None, -1) else "-"
        lines.append(f"{r['hosts']:>5}  {r['case']:34} {r['median']:>9.3f} {r['min']:>8.3f} {r['max']:>8.3f} "
                     f"{ratio:>8} {r['load_median']:>6.2f} {commands!s:>9}")
    ours = [r for r in ROWS if r["case"] == "first deploy (this project)"]
    theirs = [r for r in ROWS if r["case"] == "first deploy (Ansible playbook)"]
    if ours and theirs:
        lines.append(f"\nfirst deploy on {SIZE} stock hosts: this project {ours[0]['median']:.1f} s, Ansible "
                     f"{theirs[0]['median']:.1f} s ({ours[0]['median'] / theirs[0]['median']:.2f}x)")
    for r in ROWS:
        if "unavoidable" in r:
            lines.append(f"code-only redeploy, {r['hosts']} host(s): {r['median']:.2f} s, of which the steps no "
                         f"release can skip take {r['unavoidable']:.2f} s ({r['median'] / r['unavoidable']:.2f}x)")
    for case in ("first deploy", "code-only redeploy"):
        rows = [s for s in STEPS if s["case"] == case and s["hosts"] == SIZE]
        if not rows:
            continue
        lines.append(f"\nwhere the seconds go: {case}, {SIZE} hosts (median over runs; slowest and fastest host)")
        walls = {name: statistics.median([s["seconds"] for s in rows if s["step"] == name])
                 for name in dict.fromkeys(s["step"] for s in rows)}
        total = sum(walls.values())
        for name, wall in walls.items():
            if wall < 0.5:
                continue
            mine = [s for s in rows if s["step"] == name]
            slow = [s["slowest_host"] for s in mine if s["slowest_host"] != ""]
            fast = [s["fastest_host"] for s in mine if s["fastest_host"] != ""]
            hosts = f"  hosts {statistics.median(fast):6.2f} .. {statistics.median(slow):6.2f} s" if slow else ""
            lines.append(f"  {name:34} {wall:7.2f} s  {100 * wall / total:5.1f} %{hosts}")
        small = sum(wall for wall in walls.values() if wall < 0.5)
        lines.append(f"  {'the other steps, each under 0.5 s':34} {small:7.2f} s  {100 * small / total:5.1f} %")
    return "\n".join(lines)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    release = Path("/etc/os-release").read_text()
    name = re.search(r'^PRETTY_NAME="?([^"\n]+)', release, re.M)
    ansible = subprocess.run([str(ANSIBLE.with_name("ansible")), "--version"], capture_output=True, text=True)
    return (f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
            f"machine: {os.cpu_count()} cores ({cpu}), {memory} memory, {name.group(1) if name else '?'}, "
            f"kernel {platform.release()}\n"
            f"python {platform.python_version()}; {ansible.stdout.splitlines()[0] if ansible.stdout else 'ansible ?'}\n"
            f"hosts: systemd-nspawn containers of stock Debian 12 (fleet/hosts.py) on this machine\n"
            f"runs: {RUNS} per case, {FIRST_RUNS} first deploys each, {ANSIBLE_NOOP_RUNS} Ansible no-ops\n")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    compileall.compile_dir(str(ROOT / "djdeploy"), quiet=1)  # bytecode, as a first run writes it
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ansible = Ansible(work)
        ansible.prepare()
        try:
            print(f"first deploys, {SIZE} fresh hosts each:", flush=True)
            first_deploys(ansible)
            print(f"no-ops, {SIZE} hosts:", flush=True)
            no_ops(ansible)
            fleet_tool.down([THEIRS])
            for size in sorted(CODE_SIZES, reverse=True):
                print(f"code-only redeploys, {size} host(s):", flush=True)
                code_only(size, work)
        finally:
            fleet_tool.down([OURS, THEIRS])
            shutil.rmtree(work, ignore_errors=True)
    text = tables()
    print("\n" + text)
    (OUT / "results.txt").write_text(text + "\n")
    (OUT / "machine.txt").write_text(machine())
    for name, rows in (("results.csv", ROWS), ("steps.csv", STEPS)):
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with open(OUT / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    print(f"\nwrote {OUT}/results.txt, results.csv, steps.csv, machine.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
