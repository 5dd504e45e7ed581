"""Where the deploy goes: your servers (servers.toml) or else the local fleet.

servers.toml (untracked; path also from $DJDEPLOY_SERVERS) lists hosts per group and
how to reach them over SSH:

    [ssh]
    user = "deploy"              # optional, default: your SSH config / current user
    key = "~/.ssh/id_ed25519"    # optional
    port = 22                    # optional
    known_hosts_file = "..."     # optional, default ~/.ssh/known_hosts
    strict_host_key_checking = "accept-new"  # optional: yes, accept-new (default) or off

    [web]
    hosts = ["app1.example.com", "app2.example.com"]
    # or, with data keys for one host alone (over group_data, checked like the rest):
    # hosts = ["app1.example.com", { name = "app2.example.com", allowed_hosts = ["www.example.com"] }]

    [staging]
    hosts = ["staging.example.com"]

Without it, the local fleet named $DJDEPLOY_FLEET (default "demo") is the target: the
fleet tool (fleet/hosts.py) writes a servers file of this format for each fleet it starts.
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib
from pathlib import Path

from djdeploy import SPEED, errors, terminal

FLEETS = Path(os.environ.get("DJDEPLOY_FLEET_DIR", "/var/lib/djdeploy/fleets"))  # the local fleets'
SSH_KEYS = {
    "user": ("ssh_user", str),
    "key": ("ssh_key", str),
    "port": ("ssh_port", int),
    "known_hosts_file": ("ssh_known_hosts_file", str),
    "strict_host_key_checking": ("ssh_strict_host_key_checking", str),
}


class InventoryError(Exception):
    """The inventory cannot be built: one line for the user."""


def known_groups(group_data: Path) -> list[str]:
    return sorted(p.stem for p in group_data.glob("*.py") if p.stem not in ("all", "inventory"))


def from_servers_file(path: Path, groups: list[str]) -> dict[str, list]:
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InventoryError(f"{path}: cannot read it: {error}") from None
    ssh = config.pop("ssh", {})
    ssh_data = {}
    for key, value in ssh.items():
        if key not in SSH_KEYS:
            raise InventoryError(f"{path}: unknown [ssh] key {key!r}: use {', '.join(SSH_KEYS)}")
        name, kind = SSH_KEYS[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):  # true is no port
            raise InventoryError(f"{path}: [ssh] {key} must be a {kind.__name__}")
        ssh_data[name] = os.path.expanduser(value) if key == "key" else value
    if "ssh_key" in ssh_data and not Path(ssh_data["ssh_key"]).is_file():
        raise InventoryError(f"{path}: [ssh] key {ssh_data['ssh_key']} does not exist: "
                             "create it (ssh-keygen) or fix the path")
    inventory = {}
    for group, body in config.items():
        if group not in groups:
            raise InventoryError(f"{path}: unknown group [{group}]: the groups are "
                                 f"{', '.join(groups)} (one group_data/<group>.py each)")
        hosts = body.get("hosts") if isinstance(body, dict) else None
        if not isinstance(hosts, list) or not hosts:
            raise InventoryError(f"{path}: [{group}] needs hosts = [\"name\", ...]")
        inventory[group] = [_host(path, group, entry, ssh_data) for entry in hosts]
    if not inventory:
        raise InventoryError(f"{path}: no hosts: add a [web] section with hosts = [...]")
    return inventory


def _host(path: Path, group: str, entry, ssh_data: dict) -> tuple[str, dict]:
    """(name, data) of one entry of a group's hosts: a name, or a table with the name and
    data keys for that host alone (checked with the rest of its data)."""
    data = dict(ssh_data)
    if isinstance(entry, dict):
        entry = dict(entry)
        name = entry.pop("name", None)
        data.update(entry)
    else:
        name = entry
    if not isinstance(name, str) or not name:
        raise InventoryError(f"{path}: [{group}] needs hosts = [\"name\", ...]: each a name, or "
                             f"{{ name = \"...\", key = value }} with data for that host alone")
    if name.startswith("-") or any(c.isspace() or not c.isprintable() for c in name):
        raise InventoryError(f"{path}: [{group}] host {name!r}: not a host name (it would read as an option "
                             "or break a line): use the name or address you reach it by over SSH")
    return name, data


VERBS = ("deploy.py", "rollback.py", "unlock.py")  # the deploy files that change hosts


def check_invocation(project_dir: Path, argv: list, environ, interactive: bool) -> None:
    """pyinfra started the way the deploy works, or one line saying how (not a traceback
    later): from the project folder (templates/ and group_data/ are found from there), in
    pyinfra's default mode (not --serial or --no-wait), and with -y when no terminal can
    answer pyinfra's "execute?" question."""
    if Path.cwd().resolve() != project_dir.resolve():  # (pyinfra's --chdir changes it before this)
        raise InventoryError(f"run pyinfra from the project folder: cd {project_dir} (templates/, files/ and "
                             f"group_data/ are read from there), then pyinfra inventory.py deploy.py")
    verb = next((Path(a).name for a in argv[1:] if a.endswith(".py") and Path(a).name in VERBS), None)
    flags = {a for a in argv[1:] if a.startswith("-")}
    modes = sorted({"--serial", "--no-wait"} & flags)
    if verb and modes:  # pyinfra then runs no operation_start/operation_end: no lock, no batches
        raise InventoryError(f"{' and '.join(modes)}: not supported by {verb}, whose deploy lock and batched "
                             "switch need pyinfra's default mode: run it without, and set `batch` in data "
                             "to switch fewer hosts at once")
    yes = ("--yes" in flags or any(not a.startswith("--") and "y" in a[1:] for a in flags)
           or environ.get("PYINFRA_YES", "").lower() in ("1", "true", "t", "yes", "y", "on"))
    if verb and yes and "--dry" in flags:  # pyinfra skips its change detection with -y: an empty preview
        raise InventoryError(f"--dry with -y (or PYINFRA_YES) shows no change: pyinfra skips detecting changes "
                             f"when told yes: run pyinfra inventory.py {verb} --dry --diff without -y")
    answered = yes or "--dry" in flags
    if verb and not answered and not interactive:
        raise InventoryError(f"no terminal to answer pyinfra's confirmation: pass -y (pyinfra -y inventory.py "
                             f"{verb}), or --dry to see the changes only")


def check_group_data(group_data: Path) -> None:
    """Each group_data file is Python that compiles (pyinfra would call a mistake there an
    internal error, with a traceback)."""
    for path in sorted(group_data.glob("*.py")):
        try:
            compile(path.read_bytes(), str(path), "exec")
        except SyntaxError as error:
            raise InventoryError(f"{path.relative_to(group_data.parent)} line {error.lineno}: {error.msg}: "
                                 "fix it (plain assignments, e.g. port = 80)") from None


def load(project_dir: Path) -> dict[str, list]:
    """Host lists per group for inventory.py; exits with one line when there are none."""
    if SPEED:
        from djdeploy.speed import bookkeeping, settled

        bookkeeping.install()  # before deploy files import pyinfra's operations and facts
        settled.install_catch()  # a settled fleet's deploy file stops at speed_up
    errors.install()  # a DeployError: its own lines, no traceback
    terminal.install()  # hosts' words reach the terminal as text, never as its commands
    groups = known_groups(project_dir / "group_data")
    servers = Path(os.environ.get("DJDEPLOY_SERVERS", project_dir / "servers.toml"))
    fleet = os.environ.get("DJDEPLOY_FLEET", "demo")
    try:
        check_invocation(project_dir, sys.argv, os.environ, sys.stdin.isatty())
        check_group_data(project_dir / "group_data")
        if servers.exists():
            return from_servers_file(servers, groups)
        if "DJDEPLOY_SERVERS" in os.environ:
            raise InventoryError(f"DJDEPLOY_SERVERS={servers}: no such file")
        fleet_servers = FLEETS / fleet / "servers.toml"
        if not fleet_servers.exists():
            raise InventoryError(
                f"no servers to deploy to: write {servers.name} (see README, 'Your own servers') "
                f"or start the local fleet with `make fleet-up`")
        return from_servers_file(fleet_servers, groups)
    except InventoryError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


# paramiko logs a traceback for a failed handshake; pyinfra's one line per host says it.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)
