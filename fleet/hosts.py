"""The local fleet: throwaway Debian hosts with systemd as PID 1 and OpenSSH.

Each host is a systemd-nspawn container booted from a shared, cached base image
(debootstrap) through its own overlay mount, in its own network namespace joined to
this machine by a veth pair with link-local addresses 169.254.I.1 (machine) and
169.254.I.2 (host). Root only.

A host is what a stock Debian 12/13 cloud server is (systemd, OpenSSH, python3, sudo,
the stock apt sources; no apt lists, so `apt-get update` comes first): whatever the
deploy needs it installs with apt. The hosts have no internet; they reach Debian's
archive through one apt-cacher-ng that the fleet runs on this machine, bound only to
169.254.254.1 (a link of its own, `djdapt0`), and named as their apt proxy. It is
shared by every fleet on the machine: started by the first `up`, stopped by the `down`
of the last fleet, which also restores fs.inotify.max_user_instances if `up` raised it
(a host takes a few inotify instances of root's; 128 runs out at ~18 hosts).

All state lives in one known place, STATE_DIR/<fleet>/state.json, so `down` from any
checkout removes a fleet started from another, `up` refuses to start a second copy of
a running fleet, and a stale fleet (its processes killed, its mounts, namespaces and
cgroups left behind) is recognised and cleared. The last `down` leaves nothing running
and nothing in /etc; what stays is the cache in CACHE_DIR: base image tarballs and the
proxy's downloaded packages (CACHE_DIR/apt), so later fleets start and install fast.

    python -m fleet.hosts up --name demo --hosts 3
    python -m fleet.hosts status --name demo
    python -m fleet.hosts down --name demo      # or --all
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from fleet.base import CGROUP_PARENT, CGROUP_ROOTS, FleetError, NSPAWN_RUN, SUITES, log, machine_lock, run
from fleet.image import base_root
from fleet.machine import remove_cgroup, start_host, wait_ready
from fleet.shared import ensure_inotify_headroom, ensure_proxy, release_shared
from fleet.state import (all_states, fleet_dir, free_indices, host_groups, load_state, per_host, save_state,
                         supervisor_alive, write_servers)


def host_suites(suite: str, count: int) -> list[str]:
    """Each host's Debian suite: "trixie", or one per host ("bookworm,bookworm,trixie"; the
    last repeats), for a fleet that mixes releases."""
    names = [part.strip() for part in suite.split(",") if part.strip()] or ["bookworm"]
    for name_ in names:
        if name_ not in SUITES:
            raise FleetError(f"unknown Debian suite {name_!r}: use one of {', '.join(SUITES)}")
    return per_host(names, count)


def up(name: str, count: int, suite: str, timeout: float, reuse: bool = False,
       groups: str | None = None) -> dict:
    with machine_lock():
        state = load_state(name)
        if state is not None:
            if any(supervisor_alive(h) for h in state["hosts"]):
                if reuse:
                    log(f"fleet {name!r} is already running ({len(state['hosts'])} hosts): using it")
                    ensure_proxy()  # its hosts' apt needs it, if something stopped it
                    write_servers(state)
                    return state
                raise FleetError(f"fleet {name!r} is already running ({len(state['hosts'])} hosts): "
                                 f"use it, or `make fleet-down FLEET={name}` first")
            log(f"clearing stale fleet {name!r} left by a stopped session")
            teardown(state)
        if count < 1:
            raise FleetError("HOSTS must be at least 1")
        started = time.monotonic()
        suites = host_suites(suite, count)
        host_group = host_groups(groups, count)
        bases = {name_: base_root(name_) for name_ in dict.fromkeys(suites)}
        fdir = fleet_dir(name)
        fdir.mkdir(parents=True, exist_ok=True)
        key = fdir / "id_ed25519"
        if not key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"fleet-{name}", "-f", str(key))
        state = {"name": name, "suite": suite, "key": str(key), "hosts": []}
        for position, index in enumerate(free_indices(count), start=1):
            machine = f"{name}-{position}"
            state["hosts"].append({
                "machine": machine, "index": index, "address": f"169.254.{index}.2",
                "group": host_group[position - 1], "netns": f"djd-{machine}",
                "veth": f"djf{index}", "cgroup": f"{CGROUP_PARENT}/{machine}",
                "dir": str(fdir / machine), "suite": suites[position - 1],
            })
        save_state(state)  # before any resource exists, so a crash here leaves something to clear
        NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(NSPAWN_RUN):
            run("mount", "-t", "tmpfs", "tmpfs", str(NSPAWN_RUN))
        public_key = (fdir / "id_ed25519.pub").read_text()
        try:
            ensure_inotify_headroom(count)
            ensure_proxy()
            for host in state["hosts"]:
                start_host(state, host, bases[host["suite"]], public_key)
        except FleetError:
            teardown(state)
            raise
    # The hosts' addresses are taken and saved: the wait for their boot holds no lock, so
    # other fleets go up and down meanwhile (a test's teardown waited a minute for it).
    try:
        wait_ready(state, timeout)
        write_servers(state)
    except FleetError:
        with machine_lock():
            teardown(state)
        raise
    log(f"fleet {name!r}: {count} host(s) up in {time.monotonic() - started:.1f} s")
    return state


def stop_host(host: dict) -> None:
    hdir = Path(host["dir"])
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((hdir / "nspawn.pid").read_text()), signal.SIGTERM)  # clean poweroff
    deadline = time.monotonic() + 20
    while supervisor_alive(host) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_host(host)  # whatever is left (a hung guest, or processes of a stale fleet)


def kill_host(host: dict) -> None:
    """Every process of the host killed at once, as if its power went: no shutdown."""
    for _ in range(50):
        pids = []
        for croot in CGROUP_ROOTS:
            for procs in (croot / host["cgroup"]).glob("**/cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids += [int(p) for p in procs.read_text().split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def numbered(state: dict, number: int) -> dict:
    """Host `number` of a fleet, counted from 1 as `up` names them (<fleet>-<number>)."""
    if not 1 <= number <= len(state["hosts"]):
        raise FleetError(f"fleet {state['name']!r} has hosts 1 to {len(state['hosts'])}, not {number}")
    return state["hosts"][number - 1]


def poweroff(name: str, number: int) -> None:
    """Host `number` loses its power: its processes killed at once (no shutdown, what it had
    not written to disk is lost), and its link down, so whoever asks it waits in vain, as
    for a machine that is off (not a refused connection). Its disk stays for `poweron`."""
    with machine_lock():
        state = _loaded(name)
        host = numbered(state, number)
        run("ip", "link", "set", host["veth"], "down")
        kill_host(host)
        log(f"{host['machine']} ({host['address']}) powered off")


def poweron(name: str, number: int, timeout: float = 120) -> None:
    """Host `number`, powered off, boots again from its own disk, at the same address."""
    with machine_lock():
        state = _loaded(name)
        host = numbered(state, number)
        if supervisor_alive(host):
            raise FleetError(f"{host['machine']} is running: `poweroff` it first")
        started = time.monotonic()
        kill_host(host)  # whatever a poweroff left behind
        run("ip", "link", "set", host["veth"], "up")
        start_host(state, host, base_root(host["suite"]), (fleet_dir(name) / "id_ed25519.pub").read_text())
    wait_ready({**state, "hosts": [host]}, timeout)  # no lock held (as in `up`)
    log(f"{host['machine']} ({host['address']}) powered on in {time.monotonic() - started:.1f} s")


def replace(name: str, number: int, timeout: float = 120) -> None:
    """Host `number` destroyed and a fresh stock one booted in its place: same name, address
    and group, an empty disk (the suite's image), new host keys."""
    with machine_lock():
        state = _loaded(name)
        host = numbered(state, number)
        started = time.monotonic()
        stop_host(host)
        run("ip", "link", "set", host["veth"], "up")
        hdir = Path(host["dir"])
        root = hdir / "root"
        if os.path.ismount(root):
            run("umount", str(root), check=False)
        for sub in ("upper", "work"):
            shutil.rmtree(hdir / sub, ignore_errors=True)
        start_host(state, host, base_root(host["suite"]), (fleet_dir(name) / "id_ed25519.pub").read_text())
    wait_ready({**state, "hosts": [host]}, timeout)  # no lock held (as in `up`)
    log(f"{host['machine']} ({host['address']}) replaced by a fresh host in {time.monotonic() - started:.1f} s")


def _loaded(name: str) -> dict:
    state = load_state(name)
    if state is None:
        raise FleetError(f"no fleet {name!r} on this machine: `make fleet-up FLEET={name}` first")
    return state


def teardown(state: dict) -> None:
    for host in state["hosts"]:
        stop_host(host)
    for host in state["hosts"]:
        root = Path(host["dir"]) / "root"
        if os.path.ismount(root):
            run("umount", str(root), check=False)
            if os.path.ismount(root):
                run("umount", "-l", str(root), check=False)
        if Path(f"/run/netns/{host['netns']}").exists():
            run("ip", "netns", "del", host["netns"], check=False)
        run("ip", "link", "del", host["veth"], check=False)
        for croot in CGROUP_ROOTS:
            remove_cgroup(croot / host["cgroup"])
    shutil.rmtree(fleet_dir(state["name"]), ignore_errors=True)
    release_shared()


def down(names: list[str]) -> None:
    with machine_lock():
        for name in names:
            state = load_state(name)
            if state is None:
                log(f"no fleet {name!r} on this machine: nothing to remove")
                continue
            started = time.monotonic()
            teardown(state)
            log(f"fleet {name!r} removed in {time.monotonic() - started:.1f} s")
        release_shared()  # also what a crash left with no fleet to tear down


def status(name: str) -> int:
    state = load_state(name)
    if state is None:
        print(f"no fleet {name!r} on this machine")
        return 1
    for host in state["hosts"]:
        alive = "running" if supervisor_alive(host) else "stopped (powered off, or stale: `make fleet-down`)"
        print(f"{host['machine']:12} {host['address']:16} {host['group']:8} {alive}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.hosts", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="boot a fleet and wait until every host answers SSH")
    p_up.add_argument("--name", default="demo")
    p_up.add_argument("--hosts", type=int, default=3)
    p_up.add_argument("--suite", default="bookworm", help="Debian suite: bookworm (12) or trixie (13), or one per host: bookworm,trixie")
    p_up.add_argument("--groups", default=None,
                      help="inventory group per host, e.g. db,web,web (default: web..., staging last)")
    p_up.add_argument("--timeout", type=float, default=120)
    p_up.add_argument("--reuse", action="store_true", help="a running fleet of that name is fine")
    p_down = sub.add_parser("down", help="remove a fleet: processes, mounts, namespaces, cgroups")
    p_down.add_argument("--name", default="demo")
    p_down.add_argument("--all", action="store_true", help="every fleet on this machine")
    p_down.add_argument("--stale", action="store_true",
                        help="every fleet whose processes are gone (left by a stopped session)")
    p_status = sub.add_parser("status", help="list a fleet's hosts")
    p_status.add_argument("--name", default="demo")
    for verb, said in (("poweroff", "cut a host's power: its processes killed, its link down, its disk kept"),
                       ("poweron", "boot a powered-off host again from its own disk"),
                       ("replace", "destroy a host and boot a fresh stock one in its place (same name and address)")):
        p_verb = sub.add_parser(verb, help=said)
        p_verb.add_argument("--name", default="demo")
        p_verb.add_argument("--host", type=int, required=True, help="its number, from 1, as `up` names it")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("fleet: must run as root (it mounts, boots containers and makes network namespaces)",
              file=sys.stderr)
        return 1
    try:
        if args.command == "up":
            up(args.name, args.hosts, args.suite, args.timeout, args.reuse, args.groups)
        elif args.command == "down" and args.all:
            down([state["name"] for state in all_states()])
        elif args.command == "down" and args.stale:
            down([state["name"] for state in all_states()
                  if not any(supervisor_alive(h) for h in state["hosts"])])
        elif args.command == "down":
            down([args.name])
        elif args.command in ("poweroff", "poweron", "replace"):
            {"poweroff": poweroff, "poweron": poweron, "replace": replace}[args.command](args.name, args.host)
        else:
            return status(args.name)
    except FleetError as error:
        log(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
