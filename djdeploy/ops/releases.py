"""The release cycle on a host, through files/release.sh (Capistrano's flow): wheelhouse,
virtualenv, a release prepared beside the others, the health-gated switch, pruning; the
settings release.sh reads (tool_env) and the host's release state (deployment)."""

from __future__ import annotations

import getpass
import hashlib
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.facts.files import File

from djdeploy.ops import balancer, front
from djdeploy.ops.facts import Deployment, DirectoryFiles, FileText, LockHolder
from djdeploy.shell import CONTROLLER, shell_quote, touching

STAMP = ".djdeploy-requirements"


def tool_env(s) -> str:
    """The settings release.sh reads, as an `env` prefix (no secrets among them)."""
    values = {
        "ROOT": s.root, "UNIT": s.unit, "APP_USER": s.user, "SOCKET": s.app_socket, "WSGI": s.wsgi_module,
        "HTTPS": "1" if s.https else "",
        "WEB": "1" if s.web else "",  # a worker-only host: no web unit to restart or health check
        "CHECK_LEVEL": s.check_level, "HEALTH_PATH": s.health_path, "HEALTH_HOST": s.health_host,
        "HEALTH_TIMEOUT": s.health_timeout, "HEALTH_RETRIES": s.health_retries,
        "ORIGIN": f"{getpass.getuser()}@{CONTROLLER}",
        "CONFIG_FILES": " ".join(s.config_files),
        "DJANGO_DIR": s.django_dir,
        # STATIC_ROOT in the release, where the deploy's settings put it (unless the app's own is kept)
        "STATIC_DIR": ".djdeploy/static" if "STATIC_ROOT" in s.overrides else "",
        "DATABASE": s.database,  # postgresql: migrations run once, by `postgresql.migrations`
        "RELEASE_COMMANDS": "\n".join(s.release_commands),  # each one shell-quoted (settings.parse)
        "PROCESSES": " ".join(s.process_instances),  # restarted once the web is healthy
        "RELEASE_COMMAND": s.procfile_release or "",  # the Procfile's release line
        "LINKED": "\n".join(s.linked),  # release paths the app writes, kept in shared/data/linked
        "BACKUP": s.backup_tool if s.restic_backups else "",  # a backup before migrations (ops/backups.py)
        "MIGRATE_WITHOUT_BACKUP": "1" if s.migrate_without_backup else "",
    }
    return "env " + " ".join(f"{k}={shell_quote(v)}" for k, v in values.items())


def last_served(lines: list[str], release_id: str | None) -> int | None:
    """The index of the revisions.log line (`lines`) where `release_id` last started serving
    (switched to, or rolled back to), or None."""
    for index in range(len(lines) - 1, -1, -1):
        parts = lines[index].split(" ", 3)
        if len(parts) == 4 and parts[1] == release_id and parts[3].startswith(("switched", "rolled back")):
            return index
    return None


def deployment(s) -> dict:
    """The host's Deployment fact, asked the same way everywhere (one fact, one batch entry)."""
    return host.get_fact(Deployment, root=s.root, config_files=s.config_files)


def serving(s) -> bool:
    """Whether the host has a release that serves (or served: a stopped app counts), so
    its switch is one of a rolling batch; a host with none serves nothing a batch keeps up."""
    return deployment(s)["current"] is not None


@operation()
def clear_lock(root: str, path: str):
    """No deploy lock is held on the host (unlock.py).

    + root: the project folder
    + path: the lock directory
    """
    if host.get_fact(LockHolder, path=path):
        yield f"rm -rf {shell_quote(path)}"


@operation()
def wheelhouse(src: Path, dest: str):
    """The folder `dest` holds exactly the wheels (and requirements file) in local `src`.

    + src: local wheelhouse built by build.wheelhouse
    + dest: remote folder, root-owned

    Each missing file is uploaded beside its final name and renamed, so an interrupted
    upload never leaves a partial wheel under a real name; files no longer wanted go.
    """
    wanted = sorted(p.name for p in Path(src).iterdir() if not p.name.startswith("."))
    present = host.get_fact(DirectoryFiles, path=dest)
    if not present:
        yield f"install -d -m 0755 -o root -g root {shell_quote(dest)}"
    for name in wanted:
        if name not in present:
            final = f"{dest}/{name}"
            yield FileUploadCommand(str(Path(src) / name), f"{final}.part")
            yield f"chmod 0644 {shell_quote(final)}.part && mv {shell_quote(final)}.part {shell_quote(final)}"
    extra = [name for name in present if name not in wanted]
    if extra:
        yield f"cd {shell_quote(dest)} && rm -f -- " + " ".join(shell_quote(n) for n in extra)


@operation()
def virtualenv(path: str, wheels_dir: str, src: Path, installer: Path, installer_dir: str):
    """A virtualenv at `path` holds exactly the locked requirements of wheelhouse `src`,
    installed offline.

    + path: remote virtualenv; its name is keyed by the wheelhouse's lock, so a venv in use
      is never rebuilt under a running app
    + wheels_dir: remote wheelhouse (see `wheelhouse`)
    + src: the same wheelhouse on the controller, with its lock file (build.wheelhouse)
    + installer: pip's wheel on the controller (build.installer)
    + installer_dir: where the host keeps it, unpacked

    Made without pip (no python3.N-venv needed, no ensurepip run), then filled by the
    pinned pip, unpacked once on the host and checked by its sha256 first. Installs the
    lock file with `--no-index --require-hashes --no-deps`: every package at its locked
    version and hash, nothing else. Records what it installed in a stamp: an unchanged
    wheelhouse is a no-op, unlike `pip.packages(requirements=...)`. A half-built venv (no
    stamp) is built again from scratch.
    """
    names = sorted(p.name for p in Path(src).iterdir() if not p.name.startswith("."))
    stamp = hashlib.sha256("\n".join(names).encode()).hexdigest()
    if host.get_fact(FileText, path=f"{path}/{STAMP}") == stamp:
        return
    lock_file = next(n for n in names if n.startswith("requirements-") and n.endswith(".lock"))
    pip = f"{installer_dir}/{Path(installer).name.removesuffix('.whl')}"
    if not host.get_fact(File, path=f"{pip}/pip/__main__.py"):
        part, new = f"{installer_dir}/.{Path(installer).name}.part", f"{installer_dir}/.new"
        yield f"install -d -m 0755 -o root -g root {shell_quote(installer_dir)}"
        yield FileUploadCommand(str(installer), part)
        # Only a whole, genuine wheel is unpacked; an earlier pip goes.
        digest = hashlib.sha256(Path(installer).read_bytes()).hexdigest()
        yield (f"[ \"$(sha256sum < {shell_quote(part)} | cut -c1-64)\" = {digest} ] "
               f"|| {{ rm -f {shell_quote(part)}; echo {shell_quote(Path(installer).name + ' did not arrive whole')} >&2; exit 1; }}; "
               f"rm -rf {shell_quote(new)} && python3 -m zipfile -e {shell_quote(part)} {shell_quote(new)} && "
               f"chmod -R go-w {shell_quote(new)} && find {shell_quote(installer_dir)} -mindepth 1 -maxdepth 1 "
               f"! -name .new -exec rm -rf {{}} + && mv {shell_quote(new)} {shell_quote(pip)}")
    yield (f"rm -rf {shell_quote(path)} && python3 -m venv --without-pip {shell_quote(path)} && "
           f"{shell_quote(path)}/bin/python {shell_quote(pip)}/pip install --isolated --quiet --disable-pip-version-check "
           f"--no-cache-dir --no-index --find-links {shell_quote(wheels_dir)} --require-hashes --no-deps "
           f"-r {shell_quote(wheels_dir)}/{lock_file} && echo {stamp} > {shell_quote(path)}/{STAMP}")


@operation()
def release(s, release_id: str, archive: Path, venv: str):
    """Release `release_id` is on the host, checked and ready to serve.

    + s: the host's AppSettings
    + release_id: content hash of the code and its requirements (build.release)
    + archive: the code, as built on the controller
    + venv: key of the virtualenv it runs in (see `virtualenv`)

    Unpacked beside the releases, then inside it as the app user: the WSGI application
    imports, `manage.py check --deploy` passes, migrations run against the shared
    database, collectstatic runs. Only then is it renamed into releases/, so a failed
    check leaves no release behind and the live one untouched.
    """
    deployed = deployment(s)
    if release_id in deployed["releases"]:
        if s.database != "postgresql" and deployed["current"] != release_id:  # back to it after a rollback:
            # migrations a rollback ran back (rollback_data) are applied again, if any
            yield touching(f"{tool_env(s)} {shell_quote(s.release_tool)} remigrate {shell_quote(release_id)}", s.root)
        return
    upload = f"{s.releases_dir}/{release_id}.tar"
    yield FileUploadCommand(str(archive), upload)
    # Unpacks, checks, migrates (SQLite), backs up first: all of it under the project folder.
    yield touching(f"{tool_env(s)} {shell_quote(s.release_tool)} prepare {shell_quote(release_id)} {shell_quote(upload)} "
                   f"{shell_quote(venv)}", s.root)


@operation()
def current_release(s, release_id: str, restart_if=None, rollback: bool = False, front_action: str | None = None,
                    balancers: tuple = ()):
    """`current` points at `release_id`, the files the app reads at start are the ones this
    run wrote, and the app serves them and passes its health check.

    + s: the host's AppSettings
    + release_id: the release that should serve
    + restart_if: callable: true when a file the app reads at start changed (or will, in a
      dry run); such a file waits as `<name>.next` (see `upload`)
    + rollback: write "rolled back" in the revisions log; files waiting are dropped
    + front_action: once this host switched, the front takes its configuration that way
      (front.follow): the front, which was not running, starts as soon as this host's app
      let go of the site's port
    + balancers: the project's balancers (inventory names): this host is drained on each
      before its switch, and put back once its health gate passed

    The switch (release.sh switch): the waiting files move in, the new `current` link is
    renamed over the old one, restart, GET the health path; on failure `current` and the
    files go back, the app restarts on them, and the host fails with a message naming the
    release and the failed check. The host records what the app was started with
    (.serving), so a restart owed by a run that stopped early is done by the next one. A
    file repaired after hand edits owes a restart only if the app was restarted by hand
    since (it may run the edited file): the host decides, as it knows both.
    """
    deployed = deployment(s)
    started_with = f"{release_id} {deployed['config']}"
    if (deployed["current"] != release_id or deployed["serving"] != started_with
            or (restart_if and restart_if())):
        mode = " rollback" if rollback else ""
        after = f" && {front.take(s, front_action)}" if front_action else ""
        yield from balancer.drain(s, balancers)
        # What it changes: the project folder (links, .serving, revisions.log), the files
        # the app reads at start (moved in), the app's units (restarted), and the front's
        # files and unit when it takes its configuration.
        units = (s.unit, s.unit_socket, *s.process_instances, *((front.UNIT,) if front_action else ()))
        yield touching(f"{tool_env(s)} {shell_quote(s.release_tool)} switch {shell_quote(release_id)}{mode}{after}",
                       s.root, *s.config_files, *((s.front_dir, s.front_dropin) if front_action else ()), units=units)
        yield from balancer.ready(s, balancers)


@operation(is_idempotent=False)
def migrations_back(s, release_id: str, known: dict):
    """Before a rollback to `release_id` switches: the current release (the code that has
    them) runs each app's migrations back to the last one the release knows (rollback.py
    with rollback_data = "reverse"); a migration Django cannot reverse stops the host.

    + s: the host's AppSettings
    + release_id: the release the rollback goes to
    + known: {app: its last migration that release knows, or "zero"}
    """
    words = " ".join(f"{shell_quote(app)} {shell_quote(name)}" for app, name in sorted(known.items()))
    yield f"{tool_env(s)} {shell_quote(s.release_tool)} unmigrate {shell_quote(release_id)} {words}"


@operation()
def leftovers_cleared(s):
    """No file waits for a switch from a run that stopped before it (`upload`'s `.next`,
    the switch's `.prev`), so a switch moves in only what this run wrote.

    + s: the host's AppSettings
    """
    left = deployment(s)["leftovers"]
    if left:  # not under a switch a killed deploy left running (release.sh takes the same lock)
        yield f"flock -w 300 {shell_quote(s.root + '/.switch-lock')} rm -f -- " + " ".join(shell_quote(p) for p in left)


@operation()
def releases_pruned(s, keep: int, release_id: str | None = None):
    """At most `keep` releases stay (and never `current` or `previous`), and their venvs.

    + s: the host's AppSettings
    + keep: how many releases to keep
    + release_id: the release this run made, counted even if the Deployment fact was read
      before it was there (pyinfra keeps a fact it read for the rest of the run): else the
      next run, with nothing to change, would prune it
    """
    releases = set(deployment(s)["releases"]) | ({release_id} if release_id else set())
    if len(releases) > keep:
        yield f"{tool_env(s)} {shell_quote(s.release_tool)} prune {int(keep)}"


@operation()
def started(s, release_id: str):
    """The app the deploy just started (it was stopped) serves release `release_id` with the
    files in place: recorded as a restart by the switch records it, so a file repaired
    later, which the app never ran, owes it no restart.

    + s: the host's AppSettings
    + release_id: the release now current
    """
    yield f"{tool_env(s)} {shell_quote(s.release_tool)} started {shell_quote(release_id)}"


@operation()
def procfile_release(s, release_id: str, here: bool):
    """The app's Procfile `release:` line has run for release `release_id`: once per deploy,
    on one host (`here`), in the new release before any switch, as the app user with the
    files it will start with. A failure stops the run before any host switched.

    + s: the host's AppSettings
    + release_id: the release, ready on this host (releases.release)
    + here: this host runs it (the first app host of the inventory)
    """
    if s.procfile_release and here and host.get_fact(FileText, path=f"{s.root}/.released") != release_id:
        yield f"{tool_env(s)} {shell_quote(s.release_tool)} release-command {shell_quote(release_id)}"
