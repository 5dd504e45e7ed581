"""A settled fleet is not planned: the no-op deploy at the floor.

After a run that changed nothing on a host, the controller keeps two digests for it:

- the run's inputs: the deploy's own code (djdeploy, deploy files, templates, files,
  group_data), the app's source tree, every host's data, the command line, the
  DJDEPLOY_ environment, pyinfra's and Python's versions, and an HMAC of the secrets
  (keyed by a random key of this controller, so the record says nothing about them);
- the host's fingerprint: `stat` of every path the run's facts read (inode, size, mode,
  owner, modification and change times, a link's target), `systemctl show` of every unit
  they read (state, main PID, whether it waits for a daemon-reload), and for facts that
  read more than a path, the paths that hold it (dpkg's status, /etc/passwd...).

The next run's batched command (factcache) first computes the host's fingerprint and,
when it equals the one recorded, answers with it alone. When every host of the
inventory answers so and the inputs are the same, no host's operations are planned:
the deploy file stops at `speed_up(host)`. A file edited, a unit stopped, a package
removed, a release deleted: the fingerprint differs, the facts come back in the same
command, and the run plans and repairs as it always did (hosts that did answer settled
are asked their facts in a second command, since one host's operations can read
another's facts). A fact whose dependencies are not known here (`watched` says None)
means the host is never settled: it is planned every time.

DJDEPLOY_SETTLED=off turns this off alone; DJDEPLOY_SPEED=off turns off every speed-up.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import os
import platform
import re
import secrets as random
import sys
from importlib import metadata
from pathlib import Path

from pyinfra.api import StringCommand
from pyinfra.api.exceptions import PyinfraError

from djdeploy.cachedir import CACHE
from djdeploy.shell import privilege, shell_quote

RECORDS = CACHE / "facts"
RUN: dict = {}  # this run: its state, its inputs' digest, whether the fleet is settled
COUNTS: dict[str, int] = {}  # remote commands per host in this run (DJDEPLOY_COUNT_COMMANDS)

SAFE = re.compile(r"^/[A-Za-z0-9_./@:+-]*$")
STAT = "stat -c '%i %s %f %u %g %.9Y %.9Z %N' --"
FOLDER_STAT = "stat -c '%n %i %f %u %g' --"
UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "MainPID", "NeedDaemonReload")
PACKAGES = "/var/lib/dpkg/status"
ACCOUNTS = ("/etc/passwd", "/etc/group")
# Environment that changes no decision of the deploy: counting, recording for the benchmark.
NEUTRAL_ENV = {"DJDEPLOY_COUNT_COMMANDS", "DJDEPLOY_RECORD_BATCH"}


class Settled(PyinfraError):
    """Raised by speed_up(host) in a deploy file when the whole fleet is settled: the
    file's operations are not planned for this host (caught around pyinfra's exec_file)."""


def enabled() -> bool:
    return os.environ.get("DJDEPLOY_SETTLED", "on").lower() != "off"


def watched(cls, args, kwargs) -> tuple[list[str], list[str], list[str]] | None:
    """(paths, units, folders) whose stat and state change whenever this fact's value can;
    None when not known (the host then never counts as settled). Of `folders` only what
    pyinfra's Directory fact decides from counts (inode, type, mode, owner, group): their
    times change with every file the app writes in them (SQLite's journal in shared/data,
    an upload in shared/media), which no operation reads."""
    from pyinfra.facts.files import Directory, File, Link, Sha1File
    from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

    from djdeploy.ops import facts as ours
    from djdeploy.speed.synth import _path, _units

    args, kwargs = list(args or ()), dict(kwargs or {})
    if cls is Directory:
        path = _path(args, kwargs)
        return ([], [], [path]) if path else None
    if cls in (File, Link, Sha1File):
        path = _path(args, kwargs)
        return ([path], [], []) if path else None
    if cls in (SystemdStatus, SystemdEnabled):
        units = _units(args, kwargs)
        return ([], units, []) if units else None
    if args:
        return None
    given = kwargs
    by_path = {ours.NamedAcl: "path", ours.DirectoryFiles: "path", ours.FileText: "path", ours.EnvFile: "path",
               ours.PathOwner: "path", ours.LockHolder: "path"}
    if cls in by_path:
        path = given.get(by_path[cls])
        return ([path], [], []) if isinstance(path, str) else None
    if cls is ours.HostPython:
        return (["/usr/bin/python3", PACKAGES], [], [])
    if cls is ours.MissingPackages:
        return ([PACKAGES], [], [])
    if cls is ours.Account:
        return (list(ACCOUNTS), [], [])
    if cls is ours.SocketListens:
        return ([], [given.get("unit"), given.get("service")], [])
    if cls is ours.UnitStates:
        units = given.get("units")
        return ([], list(units), []) if isinstance(units, (list, tuple)) else None
    if cls is ours.FrontApplied:
        front, dropin = given.get("front_dir"), given.get("dropin")
        if not isinstance(front, str) or not isinstance(dropin, str):
            return None
        return ([dropin, front, f"{front}/.applied", f"{front}/Caddyfile", f"{front}/sites", f"{front}/certs",
                 f"{front}/sites/*", f"{front}/certs/*"], [], [])
    if cls is ours.ProjectProcessUnits:
        return (["/etc/systemd/system", "/etc/systemd/system/*@.service"], [], [])
    if cls is ours.Deployment:
        root, files = given.get("root"), given.get("config_files") or []
        if not isinstance(root, str):
            return None
        folders = sorted({str(Path(f).parent) for f in files})
        return ([root, *(f"{root}/{name}" for name in ("current", "previous", "current/venv", ".serving",
                                                         "releases")), *files, *folders], [], [])
    return None


def framed(command: str):
    """(shell line, reader): the line prints fingerprint `command`'s answer behind a marker
    made from the command; the reader finds it in a command's output lines (None if not
    there). One framing for the fingerprint alone and at the head of the fact batch."""
    said = f"@@FP {hashlib.sha256(command.encode()).hexdigest()[:16]} "

    def read(lines):
        found = [line for line in lines if line.startswith(said)]
        return found[0][len(said):].strip() if found else None

    return f"echo \"{said}$({command})\"", read


def reads_under(found, touched) -> bool:
    """Whether a fact that watches `found` (see `watched`; None: not known) may read what a
    change of `touched` ((paths, units): djdeploy.shell.touching) changed: it reads one of
    the units, or one of its paths or folders is a touched path, inside one, beside one as
    its temporary or staged copy (`<path>.<suffix>`), or holds one."""
    if found is None:
        return True
    paths, units, folders = found
    touched, changed_units = touched
    if set(units) & set(changed_units):
        return True
    for path in [*paths, *folders]:
        if not isinstance(path, str) or not path.startswith("/"):
            return True
        path = path.split("*", 1)[0].rstrip("/") or "/"
        for place in touched:
            place = place.rstrip("/") or "/"
            if "/" in (path, place) or path == place or path.startswith((place + "/", place + ".")) \
                    or place.startswith(path + "/"):
                return True
    return False


def fingerprint_command(plan: list) -> str | None:
    """The shell pipeline that prints a host's fingerprint (64 hex digits) for the facts
    of `plan` ([class path, args, kwargs]); None when one of them cannot be watched."""
    import importlib

    paths, units, folders = [], [], []
    for path, args, kwargs in plan:
        module, _, name = path.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return None
        found = watched(cls, args, kwargs)
        if found is None:
            return None
        paths += found[0]
        units += found[1]
        folders += found[2]
    folders = [f for f in dict.fromkeys(folders) if f not in paths]  # watched whole elsewhere: kept so
    if not all(isinstance(p, str) and SAFE.match(p.replace("*", "")) for p in paths + folders):
        return None
    if not all(isinstance(u, str) and SAFE.match("/" + u) for u in units):
        return None
    # Globs (a folder's files) stay unquoted for the shell; every other path is quoted.
    listed = " ".join(p if "*" in p else shell_quote(p) for p in dict.fromkeys(paths))
    shown = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
    parts = [f"LC_ALL=C {STAT} {listed} 2>&1"] if paths else []
    if folders:
        parts.append(f"LC_ALL=C {FOLDER_STAT} {' '.join(shell_quote(f) for f in folders)} 2>&1")
    if units:
        parts.append(f"systemctl show {shown} -- {' '.join(shell_quote(u) for u in dict.fromkeys(units))} 2>&1")
    return "{ " + "; ".join(parts) + "; } | sha256sum | cut -c1-64"


def _files_digest(folders: list[Path], patterns=("**/*",)) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        if folder.is_file():
            found = [folder]
        elif folder.is_dir():
            found = sorted({p for pattern in patterns for p in folder.glob(pattern)
                            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")})
        else:
            found = []
        for path in found:
            digest.update(f"{path}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _secrets_digest(key_file: Path) -> str:
    """An HMAC of every secret this controller could send: the secrets folder's files and
    the DJDEPLOY_SECRET_ environment. Keyed by this controller's own random key."""
    from djdeploy.config.envfile import folder

    try:
        key = key_file.read_bytes()
    except OSError:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key = random.token_bytes(32)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
    mac = hmac.new(key, digestmod=hashlib.sha256)
    base = folder()
    if base.is_dir():
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            mac.update(f"{path}\0".encode())
            mac.update(path.read_bytes())
            mac.update(b"\0")
    for name in sorted(n for n in os.environ if n.startswith("DJDEPLOY_SECRET_")):
        mac.update(f"{name}={os.environ[name]}\0".encode())
    return mac.hexdigest()


def inputs_digest(state) -> str:
    """One digest of everything on the controller a deploy's decisions come from."""
    from djdeploy.build.archive import source_archive
    from djdeploy.config.keys import DEFAULTS

    here = Path.cwd()
    parts = {
        "python": sys.version, "platform": platform.machine(), "pyinfra": metadata.version("pyinfra"),
        "argv": sys.argv[1:],
        "env": sorted((k, v) for k, v in os.environ.items()
                      if (k.startswith("DJDEPLOY_") and not k.startswith("DJDEPLOY_SECRET_")
                          and k not in NEUTRAL_ENV) or k.startswith("PYINFRA_")),
        "code": _files_digest([Path(__file__).resolve().parent.parent]),  # the djdeploy package
        "project": _files_digest([here / "templates", here / "files", here / "group_data"]),
        "top": _files_digest(sorted([*here.glob("*.py"), *here.glob("*.toml")])),
        "secrets": _secrets_digest(RECORDS / "settled.key"),
        "hosts": [],
        "apps": {},
    }
    for host in sorted(state.inventory, key=lambda h: h.name):
        data = host.data.dict()
        parts["hosts"].append([host.name, sorted(host.groups), json.dumps(data, sort_keys=True, default=repr)])
        app = Path(data.get("app_path") or DEFAULTS["app_path"])
        if str(app) not in parts["apps"] and (app / "manage.py").is_file():
            parts["apps"][str(app)] = source_archive(app)[0]
            requirements = data.get("requirements")
            if isinstance(requirements, str) and Path(requirements).is_file():
                parts["apps"][str(app)] += _files_digest([Path(requirements)])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def file_key(host_name: str, deploy_file: str) -> str:
    """The name this controller keeps a host's files under for a deploy file (its fact plan,
    its settled record)."""
    return hashlib.sha256(f"{host_name}\n{Path(deploy_file).name}".encode()).hexdigest()[:20]


def record_file(host_name: str, deploy_file: str) -> Path:
    return RECORDS / f"{file_key(host_name, deploy_file)}.settled.json"


def read(host_name: str, deploy_file: str) -> dict:
    try:
        return json.loads(record_file(host_name, deploy_file).read_text())
    except (OSError, ValueError):
        return {}


def write(host_name: str, deploy_file: str, inputs: str, command: str, fingerprint: str) -> None:
    path = record_file(host_name, deploy_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"inputs": inputs, "command": command, "fingerprint": fingerprint}))


def forget(host_name: str, deploy_file: str) -> None:
    record_file(host_name, deploy_file).unlink(missing_ok=True)


def count(host_name: str) -> None:
    """One more remote command on this host (DJDEPLOY_COUNT_COMMANDS prints them at exit)."""
    if not COUNTS:
        atexit.register(_print_counts)
    COUNTS[host_name] = COUNTS.get(host_name, 0) + 1


def _print_counts() -> None:
    if os.environ.get("DJDEPLOY_COUNT_COMMANDS"):
        for name, n in sorted(COUNTS.items()):
            print(f"remote commands: {name} {n}", file=sys.stderr)


def fleet_settled(state, deploy_file: str) -> bool:
    """Whether every host of the inventory is settled for `deploy_file`: asked once per
    run, by one command per host (its fingerprint), and only when every host has a record
    for this run's inputs. The first host's deploy file asks; the others wait for it."""
    import gevent
    from gevent.event import Event

    if RUN.get("state") is state:
        RUN["done"].wait()
        return RUN["settled"]
    RUN.clear()
    RUN.update(state=state, done=Event(), settled=False, inputs=None)
    try:
        hosts = list(state.inventory)
        RUN["inputs"] = inputs = inputs_digest(state)
        if not enabled() or set(state.inventory.get_active_hosts()) != set(hosts):
            return False
        records = {h.name: read(h.name, deploy_file) for h in hosts}
        if not all(r.get("inputs") == inputs and r.get("command") and r.get("fingerprint")
                   for r in records.values()):
            return False

        def answer(host):
            count(host.name)
            line, read = framed(records[host.name]["command"])
            status, output = host.run_shell_command(StringCommand(line), print_output=False, print_input=False,
                                                    **privilege(host))
            return read(output.output_lines) if status else None

        jobs = {h.name: gevent.spawn(answer, h) for h in hosts}
        gevent.joinall(list(jobs.values()))
        RUN["settled"] = all(job.value == records[name]["fingerprint"] for name, job in jobs.items())
        if RUN["settled"]:
            logging.getLogger("pyinfra").info(
                f"    Settled: none of the {len(hosts)} hosts changed since a run that left them as they were, "
                "nor did this deploy's code, data, app or secrets: nothing to plan (DJDEPLOY_SETTLED=off plans "
                "every host anyway)")
        return RUN["settled"]
    finally:
        RUN["done"].set()


def install_catch() -> None:
    """A deploy file run for a fleet that is settled is not run at all: it would plan
    nothing (asked before the file runs, so a settled run does not even import what the
    file imports). Which files: those with a record, written after a run of a file that
    called speed_up(host, skip_when_settled=True). Settled raised there stops the file too."""
    import pyinfra_cli.util as cli_util
    from pyinfra.context import ctx_host, ctx_state

    original = cli_util.exec_file
    if getattr(original, "catches_settled", False):
        return

    def exec_file(filename, return_locals: bool = False, is_deploy_code: bool = False):
        if not return_locals and ctx_host.isset() and record_file(ctx_host.get().name, filename).exists():
            if fleet_settled(ctx_state.get(), filename):
                return {"__file__": filename}
        try:
            return original(filename, return_locals, is_deploy_code)
        except Settled:
            return {"__file__": filename}

    exec_file.catches_settled = True
    cli_util.exec_file = exec_file
