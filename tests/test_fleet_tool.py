"""The local fleet tool: one fleet per name, stale fleets cleared, nothing left behind;
stock Debian hosts that install packages through the fleets' own apt proxy."""

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, TEST_FLEET

FLEET = [sys.executable, "-m", "fleet.hosts"]
TOOL_FLEET = "fleettool"  # this file's own fleet, besides the shared test fleet


def fleet_cmd(*args, cwd=ROOT):
    return subprocess.run([*FLEET, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def leftovers(name):
    """Whatever of fleet `name` still exists on this machine."""
    from fleet.base import CGROUP_ROOTS, STATE_DIR

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


def proxy_pids():
    """apt-cacher-ng processes started by the fleet tool (not Debian's own service)."""
    from fleet.base import APT_PROXY_DIR

    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"apt-cacher-ng" in cmdline and str(APT_PROXY_DIR).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def answers(address, port, family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex((address, port)) == 0


def concurrent_index_requests(urls, per_index: int, rounds: int) -> list[str]:
    """Rounds of `per_index` simultaneous GETs of each of `urls` through the fleets' proxy,
    with apt's headers for an index: what failed, or took over 5 s."""
    import urllib.request

    from fleet.base import APT_PROXY_ADDRESS, APT_PROXY_PORT

    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{APT_PROXY_ADDRESS}:{APT_PROXY_PORT}"}))

    def get(url):
        started = time.monotonic()
        try:
            request = urllib.request.Request(url, headers={"Cache-Control": "max-age=0",
                                                           "User-Agent": "Debian APT-HTTP/1.3 (2.6.1)"})
            with opener.open(request, timeout=20) as answer:
                answer.read()
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            return f"{url}: {type(error).__name__}: {error}"
        took = time.monotonic() - started
        return f"{url}: {took:.1f} s" if took > 5 else None

    failed = []
    for _ in range(rounds):
        with ThreadPoolExecutor(len(urls) * per_index) as pool:
            failed += [f for f in pool.map(get, [u for u in urls for _ in range(per_index)]) if f]
    return failed


def test_inotify_headroom_is_raised_only_when_the_hosts_would_run_out():
    from fleet.shared import inotify_limit_for

    # 3 hosts on a quiet machine: 11 + 3 * 7 + 32 = 64 of 128, nothing to do.
    assert inotify_limit_for(in_use=11, limit=128, hosts=3, per_host=7, spare=32) is None
    # 18 hosts: 11 + 126 + 32 = 169, more than 128: raised to what they need.
    assert inotify_limit_for(in_use=11, limit=128, hosts=18, per_host=7, spare=32) == 169
    # Exactly at the limit is enough; one more is not.
    assert inotify_limit_for(in_use=89, limit=128, hosts=1, per_host=7, spare=32) is None
    assert inotify_limit_for(in_use=90, limit=128, hosts=1, per_host=7, spare=32) == 129
    # A limit another fleet raised already counts as it is: raised again only if short.
    assert inotify_limit_for(in_use=120, limit=169, hosts=1, per_host=7, spare=32) is None
    assert inotify_limit_for(in_use=120, limit=169, hosts=5, per_host=7, spare=32) == 187


@pytest.mark.fleet
def test_stock_hosts_install_through_the_fleets_own_apt_proxy_and_down_leaves_nothing(
        monkeypatch, capfd, tmp_path):
    """Runs before the shared test fleet boots (when this file runs alone), so its `down`
    is the last one and must take the proxy and the raised inotify limit with it."""
    from fleet import hosts as fleet_tool
    from fleet import shared
    from fleet.base import (APT_PROXY_ADDRESS, APT_PROXY_DIR, APT_PROXY_LINK, APT_PROXY_PORT, INOTIFY_LIMIT,
                            INOTIFY_SAVED)
    from fleet.machine import ssh
    from fleet.state import all_states

    original = int((INOTIFY_SAVED if INOTIFY_SAVED.exists() else INOTIFY_LIMIT).read_text())
    limit_before = int(INOTIFY_LIMIT.read_text())
    # Short headroom, so `up` has to raise the limit (raising is harmless, lowering is not).
    monkeypatch.setattr(shared, "INOTIFY_SPARE", limit_before)
    state = fleet_tool.up(TOOL_FLEET, 2, "bookworm,trixie", timeout=180)
    try:
        assert "raised fs.inotify.max_user_instances" in capfd.readouterr().err
        assert int(INOTIFY_LIMIT.read_text()) > limit_before
        assert int(INOTIFY_SAVED.read_text()) == original

        # The proxy listens on its own address only: nothing on 3142 at any other address.
        listening = subprocess.run(["ss", "-Hltn", "sport = :3142"], capture_output=True,
                                   text=True, check=True).stdout.split()
        assert f"{APT_PROXY_ADDRESS}:{APT_PROXY_PORT}" in listening
        assert [word for word in listening if word.endswith(":3142")] == [f"{APT_PROXY_ADDRESS}:3142"]
        addresses = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                                   check=True).stdout
        others = [line.split()[3].split("/")[0] for line in addresses.splitlines()
                  if line.split()[2] in ("inet", "inet6")]
        others = [a for a in others if a != APT_PROXY_ADDRESS and not a.startswith("fe80:")]
        assert "127.0.0.1" in others and len(others) > 2
        for address in others:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            assert not answers(address, APT_PROXY_PORT, family), f"something answers on {address}:3142"

        # A stock host: what the deploy needs is not there until apt installs it.
        def install(host):
            before = ssh(state, host, "dpkg -s curl python3-venv postgresql", timeout=30)
            result = ssh(state, host, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
                                      "apt-get install -y -q curl && curl --version", timeout=300)
            return before, result

        with ThreadPoolExecutor(len(state["hosts"])) as pool:
            outcomes = list(pool.map(install, state["hosts"]))
        proxy_log = (APT_PROXY_DIR / "apt-cacher.log").read_text()
        for host, (before, result) in zip(state["hosts"], outcomes):
            assert before.returncode != 0 and "is not installed" in before.stderr, before.stderr
            assert result.returncode == 0, f"{host['machine']}: {result.stdout[-1500:]}{result.stderr}"
            # Through the proxy: its log names the host's address and the package it served.
            assert any(host["address"] in line and "/curl_" in line for line in proxy_log.splitlines())
        # Many hosts asking a suite's index at once, as apt asks (revalidate: max-age=0), all
        # get it whole and at once: apt-cacher-ng refreshing it under them answered 503 or cut
        # it (and left apt-get update hanging) in most rounds before shared.APT_PROXY_CONF.
        assert concurrent_index_requests(shared.WARM_INDEXES[:3], per_index=8, rounds=3) == []
        # The hosts themselves have no way to the archive.
        direct = ssh(state, state["hosts"][0],
                     "curl -sS -m 3 -o /dev/null --noproxy '*' http://deb.debian.org/debian/", timeout=30)
        assert direct.returncode != 0

        # A stopped session kills the proxy but leaves its link: `up` starts a new one.
        (old_pid,) = proxy_pids()
        os.kill(old_pid, signal.SIGKILL)
        again = fleet_cmd("up", "--name", TOOL_FLEET, "--hosts", "2", "--reuse")
        assert again.returncode == 0, again.stderr
        new_pid = int((APT_PROXY_DIR / "proxy.pid").read_text())  # what the tool recorded
        assert new_pid != old_pid and new_pid in proxy_pids()
        assert answers(APT_PROXY_ADDRESS, APT_PROXY_PORT)
    finally:
        down = fleet_cmd("down", "--name", TOOL_FLEET, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert leftovers(TOOL_FLEET) == []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    if not all_states():  # the last fleet on the machine: what they shared has gone
        assert proxy_pids() == []
        assert f" {APT_PROXY_LINK}:" not in links
        assert not APT_PROXY_DIR.exists()
        assert int(INOTIFY_LIMIT.read_text()) == original
        assert not INOTIFY_SAVED.exists()
    else:  # another fleet (the test fleet, a demo) still uses them
        assert answers(APT_PROXY_ADDRESS, APT_PROXY_PORT)
        assert int(INOTIFY_SAVED.read_text()) == original


def test_starting_a_running_fleet_again_is_refused(fleet):
    result = fleet_cmd("up", "--name", TEST_FLEET, "--hosts", "1")
    assert result.returncode == 1
    assert f"fleet '{TEST_FLEET}' is already running (3 hosts)" in result.stderr
    assert all(fleet.ssh(h, "true").returncode == 0 for h in fleet.hosts)  # and every host still runs


def test_a_stale_fleet_is_recognised_cleared_and_removed_from_anywhere(fleet, tmp_path):
    from fleet.base import CGROUP_ROOTS
    from fleet.state import load_state

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


@pytest.mark.fleet
def test_a_host_can_lose_its_power_come_back_and_be_replaced_by_a_fresh_one():
    """Host loss for the tests of host loss: `poweroff` kills a host at once and takes its
    link down (a caller waits, as for a machine that is off); `poweron` boots it from its
    own disk at the same address; `replace` puts a fresh stock host in its place."""
    from fleet.base import SSH_OPTIONS
    from fleet.state import load_state

    name = "fleetpower"
    assert fleet_cmd("up", "--name", name, "--hosts", "2").returncode == 0
    try:
        state = load_state(name)
        second = state["hosts"][1]

        def ssh(command, timeout=20):
            return subprocess.run(["ssh", "-i", state["key"], *SSH_OPTIONS, "-o", "ConnectTimeout=3",
                                   f"root@{second['address']}", command], capture_output=True, text=True, timeout=timeout)

        assert ssh("echo kept > /root/mark && sync").returncode == 0
        off = fleet_cmd("poweroff", "--name", name, "--host", "2")
        assert off.returncode == 0, off.stderr
        started = time.monotonic()
        assert ssh("true").returncode != 0
        assert time.monotonic() - started >= 2.5  # no answer at all, as from a machine that is off
        assert "stopped" in fleet_cmd("status", "--name", name).stdout.splitlines()[1]
        first = state["hosts"][0]
        assert subprocess.run(["ssh", "-i", state["key"], *SSH_OPTIONS, f"root@{first['address']}", "true"],
                              timeout=30).returncode == 0  # the other host runs on
        on = fleet_cmd("poweron", "--name", name, "--host", "2")
        assert on.returncode == 0, on.stderr
        assert ssh("cat /root/mark").stdout.strip() == "kept"  # its own disk
        replaced = fleet_cmd("replace", "--name", name, "--host", "2")
        assert replaced.returncode == 0, replaced.stderr
        assert ssh("test -e /root/mark; echo $?; hostname").stdout.split() == ["1", f"{name}-2"]  # a fresh one
        assert fleet_cmd("poweroff", "--name", name, "--host", "3").stderr.strip().endswith(
            f"fleet '{name}' has hosts 1 to 2, not 3")
    finally:
        assert fleet_cmd("down", "--name", name).returncode == 0
    assert leftovers(name) == []
