"""The local fleet tool: one fleet per name, stale fleets cleared, nothing left behind."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, TEST_FLEET

FLEET = [sys.executable, "-m", "djdeploy.fleet"]


def fleet_cmd(*args, cwd=ROOT):
    return subprocess.run([*FLEET, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def leftovers(name):
    """Whatever of fleet `name` still exists on this machine."""
    from djdeploy.fleet import CGROUP_ROOTS, STATE_DIR

    found = []
    mounts = Path("/proc/mounts").read_text()
    if str(STATE_DIR / name) in mounts:
        found.append("mount")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    if f"djd-{name}-" in netns:
        found.append("netns")
    for root in CGROUP_ROOTS:
        if any((root / "djdeploy").glob(f"{name}-*")):
            found.append(f"cgroup {root.name}")
    if (STATE_DIR / name).exists():
        found.append("state")
    return found


def test_starting_a_running_fleet_again_is_refused(fleet):
    result = fleet_cmd("up", "--name", TEST_FLEET, "--hosts", "1")
    assert result.returncode == 1
    assert f"fleet '{TEST_FLEET}' is already running (3 hosts)" in result.stderr
    assert all(h["machine"] for h in fleet.hosts)  # and it still runs
    assert fleet.ssh(fleet.hosts[0], "true").returncode == 0


def test_a_stale_fleet_is_recognised_cleared_and_removed_from_anywhere(fleet, tmp_path):
    from djdeploy.fleet import CGROUP_ROOTS, load_state

    assert fleet_cmd("up", "--name", "stale", "--hosts", "1").returncode == 0
    host = load_state("stale")["hosts"][0]
    # A stopped session: every process killed, mounts, namespaces and cgroups left.
    for root in CGROUP_ROOTS:
        for procs in (root / host["cgroup"]).glob("**/cgroup.procs"):
            for pid in procs.read_text().split():
                os.kill(int(pid), signal.SIGKILL)
    status = fleet_cmd("status", "--name", "stale")
    assert "stale: `make fleet-down`" in status.stdout

    again = fleet_cmd("up", "--name", "stale", "--hosts", "1")
    assert again.returncode == 0, again.stderr
    assert "clearing stale fleet 'stale'" in again.stderr

    # Removed from another directory, as from another checkout: state is machine-wide.
    down = fleet_cmd("down", "--name", "stale", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert leftovers("stale") == []
