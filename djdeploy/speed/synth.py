"""Many of pyinfra's per-path facts answered by one command each kind.

pyinfra asks File, Directory and Link facts with one `stat` per path, Sha1File with one
`sha1sum` per file, SystemdStatus and SystemdEnabled with one `systemctl show` per unit. A deploy asks ~20 of them per host; in the fact
batch (factcache) each costs a shell, a fork and an exec on the host, which is what a
no-op on a busy fleet pays for.
Here they are grouped: one `stat` for every path, one `sha1sum` for every file, one
`systemctl show` for every unit, and each fact gets back exactly the lines its own
command would have printed, for pyinfra's own parser. A group whose command does not
answer as expected (no GNU stat, no sha1sum) is dropped: its facts are asked live.
"""

from __future__ import annotations

import re

from pyinfra.facts.files import LINUX_STAT_COMMAND, STAT_REGEX, Directory, File, Link, Sha1File, _unquote_stat_name
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from djdeploy.shell import shell_quote

SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./@:+-]*$")
SAFE_UNIT = re.compile(r"^[A-Za-z0-9:_.@-]+$")
STAT_FACTS = (File, Directory, Link)
SENTINELS = {"stat": "/", "sha1": "/dev/null"}  # always asked: proof that the tool answered
SYSTEMD_FACTS = (SystemdStatus, SystemdEnabled)


def _path(args, kwargs) -> str | None:
    path = kwargs.get("path") if not args and set(kwargs) == {"path"} else (
        args[0] if len(args) == 1 and not kwargs else None)
    return path if isinstance(path, str) and SAFE_PATH.match(path) else None


def _units(args, kwargs) -> list[str] | None:
    if args or set(kwargs) - {"services", "user_mode", "machine", "user_name"}:
        return None
    if kwargs.get("user_mode") or kwargs.get("machine") or kwargs.get("user_name"):
        return None
    services = kwargs.get("services")
    services = [services] if isinstance(services, str) else services
    if not services or not all(isinstance(s, str) and SAFE_UNIT.match(s) for s in services):
        return None
    return list(services)


def kind(cls, args, kwargs) -> str | None:
    """Which group answers this fact: "stat", "sha1", "systemd", or None (its own command)."""
    if cls in STAT_FACTS and _path(args, kwargs):
        return "stat"
    if cls is Sha1File and _path(args, kwargs):
        return "sha1"
    if cls in SYSTEMD_FACTS and _units(args, kwargs):
        return "systemd"
    return None


def prepare(fact, group: str, args, kwargs) -> None:
    """What the fact's own `command` would have set on it for its parser: the hash facts
    keep the path they were asked for (pyinfra's HashFileFactBase)."""
    if group == "sha1":
        fact.path = _path(args, kwargs)


def commands(facts: list[tuple]) -> dict[str, str]:
    """One shell command per group for `facts` [(kind, cls, args, kwargs)]. Each includes
    a sentinel (/ for stat, /dev/null for sha1sum) that proves the tool answered."""
    paths = {group: [sentinel] for group, sentinel in SENTINELS.items()}
    units: list[str] = []
    for group, cls, args, kwargs in facts:
        if group in paths:
            paths[group].append(_path(args, kwargs))
        elif group == "systemd":
            units += _units(args, kwargs)
    out = {}
    quoted = {g: " ".join(shell_quote(p) for p in dict.fromkeys(ps)) for g, ps in paths.items()}
    if len(paths["stat"]) > 1:
        out["stat"] = f"{LINUX_STAT_COMMAND} -- {quoted['stat']} 2>/dev/null; true"
    if len(paths["sha1"]) > 1:
        out["sha1"] = f"sha1sum -- {quoted['sha1']} 2>/dev/null; true"
    if units:
        names = " ".join(shell_quote(u) for u in dict.fromkeys(units))
        out["systemd"] = ("systemctl show --all --property Id --property SubState "
                          f"--property UnitFileState {names}")
    return out


def outputs_per_fact(group: str, lines: list[str], facts: list[tuple]) -> dict[int, list[str]] | None:
    """{index of fact: the lines its own command would print}, from the group's output;
    None when the group's tool did not answer (the facts are then asked live)."""
    if group in SENTINELS:
        by_path = {}  # path -> the line its own command prints
        for line in lines:
            if group == "stat":
                match = re.match(STAT_REGEX, line)
                if match:
                    by_path[_unquote_stat_name(match.group(8).split(" -> ")[0])] = line
            else:
                digest, _, path = line.partition("  ")
                if len(digest) == 40:
                    by_path[path] = line
        if SENTINELS[group] not in by_path:
            return None
        return {i: [by_path[_path(a, k)]] if _path(a, k) in by_path else []
                for i, (g, c, a, k) in enumerate(facts) if g == group}
    if group == "systemd":
        blocks, block = {}, {}
        for line in [*lines, ""]:
            key, sep, value = line.strip().partition("=")
            if not sep:
                if "Id" in block:
                    blocks[block["Id"]] = block
                block = {}
            else:
                block[key] = value
        found = {}
        for i, (g, cls, args, kwargs) in enumerate(facts):
            if g != "systemd":
                continue
            wanted = _units(args, kwargs)
            key = cls.state_key
            if not all(u in blocks and key in blocks[u] for u in wanted):
                return None
            found[i] = [line for u in wanted for line in (f"Id={u}", f"{key}={blocks[u][key]}")]
        return found
    return None
