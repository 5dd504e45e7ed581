"""A fleet's state (STATE_DIR/<fleet>/state.json), its servers.toml, the free addresses, and
which group each host is in."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from fleet.base import FleetError, SKIPPED_INDICES, STATE_DIR, run

def fleet_dir(name: str) -> Path:
    return STATE_DIR / name


def load_state(name: str) -> dict | None:
    path = fleet_dir(name) / "state.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save_state(state: dict) -> None:
    path = fleet_dir(state["name"]) / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.rename(path)


def write_servers(state: dict) -> Path:
    """The fleet as a servers file (djdeploy/inventory.py's format), which the project's
    inventory reads for DJDEPLOY_FLEET=<name>: the deploy knows servers files only."""
    lines = ["# Written by the fleet tool (fleet/hosts.py) for this fleet's hosts.", "[ssh]", 'user = "root"',
             f"key = {json.dumps(state['key'])}",
             "# Fleet hosts get new host keys at every boot: nothing to pin. Real servers keep",
             "# pyinfra's default (accept-new).",
             'strict_host_key_checking = "off"', 'known_hosts_file = "/dev/null"']
    groups: dict[str, list] = {}
    for host in state["hosts"]:
        groups.setdefault(host["group"], []).append(host["address"])
    for group, addresses in groups.items():
        lines += ["", f"[{group}]", f"hosts = {json.dumps(addresses)}"]
    path = fleet_dir(state["name"]) / "servers.toml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(path)
    return path


def all_states() -> list[dict]:
    if not STATE_DIR.exists():
        return []
    states = []
    for path in sorted(STATE_DIR.glob("*/state.json")):
        with contextlib.suppress(ValueError):
            states.append(json.loads(path.read_text()))
    return states


def free_indices(count: int) -> list[int]:
    """Address indices no other fleet on this machine uses (nor any leftover veth)."""
    used = {h["index"] for state in all_states() for h in state["hosts"]}
    links = run("ip", "-o", "link", "show", check=False).stdout
    free = [i for i in range(1, 255)
            if i not in SKIPPED_INDICES and i not in used and f" djf{i}@" not in links]
    if len(free) < count:
        raise FleetError(f"only {len(free)} free host addresses left: `make fleet-down` unused fleets")
    return free[:count]


def supervisor_alive(host: dict) -> bool:
    pid_file = Path(host["dir"]) / "supervisor.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return host["machine"].encode() in cmdline and b"djdeploy-host" in cmdline


def group_for(position: int, count: int) -> str:
    """Two of three default hosts are `web`, the last is `staging` (a single host is web)."""
    return "staging" if count > 1 and position == count else "web"


def per_host(values: list[str], count: int) -> list[str]:
    """`values` given as "a,b,c", one per host: the last repeats for the hosts after it."""
    return [values[min(i, len(values) - 1)] for i in range(count)]


def host_groups(groups: str | None, count: int) -> list[str]:
    """Each host's inventory group: the default (`group_for`), or one per host
    ("db,web,web"; the last repeats)."""
    if not groups:
        return [group_for(position, count) for position in range(1, count + 1)]
    names = [part.strip() for part in groups.split(",") if part.strip()]
    for name_ in names:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name_):
            raise FleetError(f"group {name_!r}: use lower-case names such as web, db, staging")
    return per_host(names, count)
