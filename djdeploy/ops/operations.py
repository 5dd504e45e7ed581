"""Custom operations: each describes a state and yields only what closes the gap.

They yield nothing when the host is already right, so a second deploy changes nothing
and a dry run shows only real changes.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
from pathlib import Path

import jinja2
from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files

from djdeploy.config import envfile
from djdeploy.ops.facts import (Account, Deployment, DirectoryFiles, EnvFile, EnvFileLines, FileText, LockHolder,
                            MissingPackages, ProjectProcessUnits, SocketListens)
from djdeploy.shell import CONTROLLER, shell_quote

STAMP = ".djdeploy-requirements"
NEXT = ".next"  # a file the app reads at start, waiting beside it for the switch (release.sh)
APT_UPDATE_TIMEOUT = 180  # seconds per try of `apt-get update`


def tool_env(s) -> str:
    """The settings release.sh reads, as an `env` prefix (no secrets among them)."""
    values = {
        "ROOT": s.root, "UNIT": s.unit, "APP_USER": s.user, "SOCKET": s.app_socket, "WSGI": s.wsgi_module,
        "HTTPS": "1" if s.https else "",
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
    }
    return "env " + " ".join(f"{k}={shell_quote(v)}" for k, v in values.items())


def deployment(s) -> dict:
    """The host's Deployment fact, asked the same way everywhere (one fact, one batch entry)."""
    return host.get_fact(Deployment, root=s.root, lock_dir=s.lock_dir, config_files=s.config_files)


@operation()
def debian_packages(packages: list):
    """The Debian packages `packages` are installed, from the host's own apt sources.

    + packages: package names

    Asks dpkg only: when every package is there nothing runs (no `apt-get update` on a
    no-op). Otherwise the package lists are updated once and the missing ones installed,
    without recommends; a failure is one line naming the packages and apt's own error.
    """
    missing = host.get_fact(MissingPackages, packages=tuple(packages))
    if not missing:
        return
    names = " ".join(shell_quote(p) for p in missing)
    apt = "apt-get -q -y -o DPkg::Lock::Timeout=300 -o Acquire::Retries=2"
    wait = int(APT_UPDATE_TIMEOUT)
    # The lists, in up to 3 tries of at most APT_UPDATE_TIMEOUT each: a fetch that stalls
    # (seen through a caching proxy that several hosts asked at the same moment) is cut
    # and tried again, instead of holding the deploy for ever.
    yield StringCommand(
        "export DEBIAN_FRONTEND=noninteractive; "
        f"for try in 1 2 3; do rc=0; out=$(timeout -k 10 {wait} {apt} update 2>&1) || rc=$?; [ $rc = 0 ] && break; "
        f"[ $rc = 124 ] && out=\"E: no answer within {wait} s\"; "
        "[ $try = 3 ] && { echo \"apt-get update failed on this host (3 tries; the last: "
        "$(printf '%s' \"$out\" | grep -E '^(E|Err):' | tail -n 1)): check its apt sources and proxy (/etc/apt)\" >&2; "
        "exit 1; }; sleep 2; done; "
        f"out=$({apt} install --no-install-recommends {names} 2>&1) || {{ echo \"could not install {names}: "
        "$(printf '%s' \"$out\" | grep -E '^E:' | tail -n 1 | grep . || printf '%s' \"$out\" | tail -n 1): "
        f"check the names (apt-cache policy {names}) and the host's apt sources\" >&2; exit 1; }}"
    )


@operation()
def system_group(group: str, user: str):
    """A system group `group` exists.

    + group: the group's name
    + user: the user that will be in it (read in the same lookup as `system_user`)
    """
    if host.get_fact(Account, user=user, group=group)["group"] is None:
        yield f"groupadd --system {shell_quote(group)}"


@operation()
def system_user(user: str, group: str, home: str, shell: str = "/usr/sbin/nologin"):
    """A system user `user` exists, in primary group `group`, with that home and shell.

    + user: the user's name
    + group: its primary group (see `system_group`)
    + home: its home directory; not created (the deploy owns that folder)
    + shell: its login shell; no login by default
    """
    account = host.get_fact(Account, user=user, group=group)["user"]
    if account is None:
        yield (f"useradd --system --no-create-home --home-dir {shell_quote(home)} --shell {shell_quote(shell)} "
               f"--gid {shell_quote(group)} {shell_quote(user)}")
        return
    changes = []
    if account["home"] != home:
        changes += ["--home", shell_quote(home)]
    if account["shell"] != shell:
        changes += ["--shell", shell_quote(shell)]
    if account["group"] != group:
        changes += ["--gid", shell_quote(group)]
    if changes:
        yield f"usermod {' '.join(changes)} {shell_quote(user)}"


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
def virtualenv(path: str, wheels_dir: str, src: Path):
    """A virtualenv at `path` holds exactly the locked requirements of wheelhouse `src`,
    installed offline.

    + path: remote virtualenv; its name is keyed by the wheelhouse's lock, so a venv in use
      is never rebuilt under a running app
    + wheels_dir: remote wheelhouse (see `wheelhouse`)
    + src: the same wheelhouse on the controller, with its lock file (build.wheelhouse)

    Installs the lock file with `--no-index --require-hashes --no-deps`: every package at
    its locked version and hash, nothing else. Records what it installed in a stamp: an
    unchanged wheelhouse is a no-op, unlike `pip.packages(requirements=...)`. A half-built
    venv (no stamp) is built again from scratch.
    """
    names = sorted(p.name for p in Path(src).iterdir() if not p.name.startswith("."))
    stamp = hashlib.sha256("\n".join(names).encode()).hexdigest()
    if host.get_fact(FileText, path=f"{path}/{STAMP}") == stamp:
        return
    lock_file = next(n for n in names if n.startswith("requirements-") and n.endswith(".lock"))
    yield (f"rm -rf {shell_quote(path)} && python3 -m venv {shell_quote(path)} && {shell_quote(path)}/bin/pip install --quiet "
           f"--disable-pip-version-check --no-index --find-links {shell_quote(wheels_dir)} --require-hashes --no-deps "
           f"-r {shell_quote(wheels_dir)}/{lock_file} && echo {stamp} > {shell_quote(path)}/{STAMP}")


@functools.lru_cache(maxsize=32)
def env_template(text: str) -> jinja2.Template:
    """The .env template, compiled once per run (not once per host)."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     autoescape=False)
    environment.filters["envquote"] = envfile.quote
    return environment.from_string(text)


def render_env(src: str, s, secrets: dict) -> str:
    """The .env text from template `src`: the settings' variables, then the secrets, quoted."""
    text = env_template(Path(src).read_text()).render(s=s, environment=s.environment, secrets=secrets)
    return text if text.endswith("\n") else text + "\n"  # as it arrives: pyinfra ends stdin with one


@operation()
def env_file(s, src: str, secrets: dict):
    """The app's .env holds the settings' variables and the host's secrets, root:<group> 0640.

    + s: the host's AppSettings
    + src: the .env template (variables quoted with its `envquote` filter)
    + secrets: NAME -> value, from `envfile.load`

    Never printed, never diffed, never in an argument: the host is compared through salted
    digest of the file (EnvFile) and, when it differs, of each line (EnvFileLines): the run reports only the names that change,
    and the new file goes over the SSH channel's stdin into a file beside .env that is
    root's and 0600 from the start, then gets its group and mode, then is renamed over
    .env. With --sudo too: nothing passes through /tmp.
    """
    text = render_env(src, s, secrets)
    salt = f"djdeploy-env:{s.project}"
    present = host.get_fact(EnvFile, path=s.env_file, salt=salt)
    if present and present["digest"] == envfile.file_digest(text, salt) and present["owner"] == ["root", s.group, "640"]:
        return
    wanted = envfile.line_digests(text, salt)
    lines = host.get_fact(EnvFileLines, path=s.env_file, salt=salt) if present else None
    what = envfile.changes(lines, wanted) if present else ["created"]
    what = what or [f"owner or mode ({' '.join(present['owner'])}) set to root {s.group} 640"]
    logger.info(f"{host.print_prefix}.env: {', '.join(what)} (restarts {s.unit})")
    dest, group = shell_quote(s.env_file + NEXT), shell_quote(s.group)
    # stdin: the salted digest of the file, then the file. Only a file that arrived whole
    # (a killed controller sends part of it) replaces .env.
    yield StringCommand(
        f"umask 077 && t=$(mktemp {dest}.XXXXXX) && {{ read -r want && cat > \"$t\" && "
        f"[ \"$({{ printf '%s\\0' {shell_quote(salt)}; cat \"$t\"; }} | sha256sum | cut -d' ' -f1)\" = \"$want\" ] && "
        f"sync \"$t\" && chown root:{group} \"$t\" && chmod 0640 \"$t\" && mv -f \"$t\" {dest}; }} "
        f"|| {{ rm -f \"$t\"; echo '.env did not arrive whole: left as it was' >&2; exit 1; }}",
        # One piece, not split into lines: str.splitlines would also split at U+2028,
        # U+0085, ... inside a value, and pyinfra ends each piece with a line break.
        _stdin=[envfile.file_digest(text, salt) + "\n" + text],
    )


@operation()
def secret_key(path: str, group: str):
    """A random Django SECRET_KEY exists at `path` (root:`group` 0640), made once on the host.

    + path: remote file; an existing key is never replaced, so sessions survive deploys
    + group: the app's group, which may read it

    The key is generated on the host and never crosses the network or the output.
    """
    if host.get_fact(File, path=path):
        return
    quoted = shell_quote(path)
    yield (f"umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > {quoted}.new"
           f" && chown root:{shell_quote(group)} {quoted}.new && chmod 0640 {quoted}.new"
           f" && mv {quoted}.new {quoted}")


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
    if release_id in deployment(s)["releases"]:
        return
    upload = f"{s.releases_dir}/{release_id}.tar"
    yield FileUploadCommand(str(archive), upload)
    yield f"{tool_env(s)} {shell_quote(s.release_tool)} prepare {shell_quote(release_id)} {shell_quote(upload)} {shell_quote(venv)}"


@operation()
def current_release(s, release_id: str, restart_if=None, rollback: bool = False, then: str = "true"):
    """`current` points at `release_id`, the files the app reads at start are the ones this
    run wrote, and the app serves them and passes its health check.

    + s: the host's AppSettings
    + release_id: the release that should serve
    + restart_if: callable: true when a file the app reads at start changed (or will, in a
      dry run); such a file waits as `<name>.next` (see `upload`)
    + rollback: write "rolled back" in the revisions log; files waiting are dropped
    + then: a command run once this host switched (front.follow: the front, which was not
      running, starts as soon as this host's app let go of the site's port)

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
        after = "" if then == "true" else f" && {then}"
        yield f"{tool_env(s)} {shell_quote(s.release_tool)} switch {shell_quote(release_id)}{mode}{after}"


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
def upload(src: str, dest: str, mode: str, user: str = "root", group: str = "root", staged: bool = False,
           **data):
    """The file `dest` has the content of local `src` (a template when it ends in .j2,
    rendered with `data`), owned by `user`:`group` with `mode`.

    + src, dest, mode, user, group: as files.put and files.template
    + staged: a file the app reads at start: a new content waits beside it as
      `dest.next`, and the switch moves it in with the release it belongs to (and back
      if that release fails its health check). A run that stops before the switch leaves
      what the app reads as it was.

    Compared with the file in place as files.put compares it (a dry run with --diff shows
    the lines). A new content is uploaded to `<name>.part`, checked against its sha1 and
    only then renamed: a controller killed during an upload (SFTP writes in place) never
    leaves a cut file under a name anything reads.
    """
    if src.endswith(".j2"):
        commands = list(files.template._inner(src=src, dest=dest, user=user, group=group, mode=mode, **data))
    else:
        commands = list(files.put._inner(src=src, dest=dest, user=user, group=group, mode=mode))
    sent = next((c for c in commands if isinstance(c, FileUploadCommand)), None)
    if sent is None:
        yield from commands  # owner or mode only: set on the file in place
        return
    content = sent.src.getvalue().encode() if hasattr(sent.src, "getvalue") else Path(sent.src).read_bytes()
    final = dest + NEXT if staged else dest
    yield FileUploadCommand(sent.src, final + ".part", remote_temp_filename=sent.remote_temp_filename)
    yield arrived_whole(final, hashlib.sha1(content).hexdigest(), user, group, mode, shown=dest)


def arrived_whole(final: str, sha1: str, user: str, group: str, mode: str, shown: str) -> StringCommand:
    """`final`.part becomes `final` (with owner and mode) only if its SHA-1 is `sha1`;
    otherwise it goes, and the host fails with one line naming `shown`."""
    part = shell_quote(final + ".part")
    return StringCommand(
        f"[ \"$(sha1sum < {part} | cut -c1-40)\" = {sha1} ] "
        f"&& chown {shell_quote(user)}:{shell_quote(group)} {part} && chmod {shell_quote(mode)} {part} "
        f"&& mv -f {part} {shell_quote(final)} "
        f"|| {{ rm -f {part}; echo {shell_quote(shown + ' did not arrive whole: left as it was')} >&2; exit 1; }}"
    )


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
def socket_unit(s, src: str):
    """In socket mode, the socket unit rendered from template `src`; in ambient mode,
    nothing here (`listener` removes a socket unit left from socket mode).

    + s: the host's AppSettings
    + src: the socket unit's template
    """
    if s.listen == "socket":
        yield from upload._inner(src=src, dest=s.socket_file, mode="0644", s=s)


def listen_changes(s) -> bool:
    """The port changes hands in this run: socket mode to ambient mode or back (or a first
    deploy). The listener then changes before any switch, so the unit that says how the
    app gets its port goes in place with it, not with the switch."""
    return (s.listen == "socket") != bool(host.get_fact(File, path=s.socket_file))


def socket_moves(s) -> list:
    """Where the app's socket listens, when it listens, but not at its unix socket (a host
    deployed when gunicorn listened on 127.0.0.1:app_port, or before the front, when the
    socket held the site's port); [] otherwise. Asked as the deploy file is read, before anything changes:
    once the socket's file is rewritten and systemd reloaded, systemd shows the new
    address although the old socket still listens."""
    socket_unit = s.unit_socket
    if s.listen != "socket" or not host.get_fact(SystemdStatus, services=[socket_unit]).get(socket_unit):
        return []
    listens = host.get_fact(SocketListens, unit=socket_unit, service=s.unit)
    return listens if listens != [s.app_socket] else []


@operation()
def listener(s, moving_from: list, front: str = "true"):
    """The port is held the way `s.listen` says: by the socket unit, or by gunicorn itself.

    + s: the host's AppSettings
    + moving_from: where the socket listens before this run, when it moves (socket_moves)
    + front: the command that makes the front take its configuration (front.follow): run
      as soon as a socket that moves has let go of its port, so the front answers at once
      (on a host deployed before the front, the socket held the site's port itself)

    Socket mode: the socket unit is enabled and listening (an app still holding the port
    itself is stopped first). Ambient mode: no socket unit is left to hold the port.
    """
    socket_unit = s.unit_socket
    active = host.get_fact(SystemdStatus, services=[socket_unit]).get(socket_unit)
    enabled = host.get_fact(SystemdEnabled, services=[socket_unit]).get(socket_unit)
    if s.listen == "socket":
        if moving_from:
            # It listens elsewhere: the socket takes its new port with the app stopped a moment,
            # while the front tries again. The site's port before the front: the front takes
            # it as soon as the socket let go. Another app_port: the front sends to the new
            # one first, and the old socket is stopped once gunicorn took what it queued (what
            # the front sent just before: half a second, then the socket's queue empty).
            stop, then = f"systemctl stop {shell_quote(s.unit)} {shell_quote(socket_unit)}", (
                f"{tool_env(s)} {shell_quote(s.release_tool)} listen && systemctl start {shell_quote(s.unit)}")
            if all(address.startswith("127.0.0.1:") for address in moving_from):
                ports = "|".join(address.rsplit(":", 1)[1] for address in moving_from)
                queued = f"ss -Hltn | awk '$4 ~ /^127[.]0[.]0[.]1:({ports})$/ {{n += $2}} END {{print n + 0}}'"
                drained = f'{{ sleep 0.5; for i in $(seq 50); do [ "$({queued})" = 0 ] && break; sleep 0.1; done; }}'
                yield f"{front} && {drained} && {stop} && {then}"
            else:
                yield f"{stop} && {front} && {then}"
        elif not active:  # a port another program holds is named (release.sh listen)
            yield f"{tool_env(s)} {shell_quote(s.release_tool)} listen"
        if not enabled:
            yield f"systemctl enable {shell_quote(socket_unit)}"
    elif active or enabled or host.get_fact(File, path=s.socket_file):
        yield (f"systemctl disable --now {shell_quote(socket_unit)} 2>/dev/null; rm -f {shell_quote(s.socket_file)}; "
               "systemctl daemon-reload")


UNITS = "/etc/systemd/system"
WANTS = f"{UNITS}/multi-user.target.wants"


@operation()
def procfile_release(s, release_id: str, here: bool):
    """The app's Procfile `release:` line has run for release `release_id`: once per deploy,
    on one host (`here`), in the new release before any switch, as the app user with the
    files it will start with. A failure stops the run before any host switched.

    + s: the host's AppSettings
    + release_id: the release, ready on this host (operations.release)
    + here: this host runs it (the first app host of the inventory)
    """
    if s.procfile_release and here and host.get_fact(FileText, path=f"{s.root}/.released") != release_id:
        yield f"{tool_env(s)} {shell_quote(s.release_tool)} release-command {shell_quote(release_id)}"


@operation()
def process_units(s):
    """Each process type's template unit (<project>-<name>@.service) is in place, before the
    switch that restarts its instances; `processes` removes those of types gone.

    + s: the host's AppSettings
    """
    changed = False
    for process, dest in zip(s.running_processes, s.process_unit_files):
        commands = list(upload._inner(src="templates/process.service.j2", dest=dest, mode="0644", s=s,
                                      process=process))
        changed = changed or bool(commands)
        yield from commands
    if changed:
        yield "systemctl daemon-reload"


@operation()
def processes(s):
    """The process types' instances run as data says: name@1..count enabled and running,
    the instances above a count (or of a type no longer there) stopped and disabled, and
    the units of types gone removed. A stop is the unit's: its signal, then stop_timeout.

    + s: the host's AppSettings
    """
    wanted = set(s.process_instances)
    templates = {s.process_unit(p) for p in s.running_processes}
    owned = set(host.get_fact(ProjectProcessUnits, project=s.project))  # another project's are not ours
    extra = [n for n in host.get_fact(DirectoryFiles, path=WANTS)
             if n.split("@", 1)[0] + "@.service" in owned and n not in wanted]
    if extra:
        yield "systemctl disable --now -- " + " ".join(shell_quote(n) for n in extra)
    stale = sorted(owned - templates)
    if stale:
        gone = " ".join(shell_quote(n.replace("@.service", "@*.service")) for n in stale)
        yield f"systemctl stop -- {gone}; rm -f -- " + " ".join(shell_quote(f"{UNITS}/{n}") for n in stale)
        yield "systemctl daemon-reload"
    if not wanted:
        return
    active = host.get_fact(SystemdStatus, services=sorted(wanted))
    enabled = set(host.get_fact(DirectoryFiles, path=WANTS))
    start = [n for n in sorted(wanted) if not active.get(n) or n not in enabled]
    if start:
        yield "systemctl enable --now -- " + " ".join(shell_quote(n) for n in start)


@operation()
def scheduled_jobs(s, timers: list):
    """Each of `timers` is a systemd timer on this host, enabled and waiting, with the service
    it starts (<project>-job-<name>.timer and .service); the project's other job units are gone.

    + s: the host's AppSettings
    + timers: the Timers this host runs (`preflight.timers_here`)

    The service runs `manage.py <command>` through the manage script, in the release
    `current` points at when it starts, as the app user, with the app's .env and sandbox.
    """
    prefix = f"{s.project}-job-"
    wanted = {f"{prefix}{t.name}.{kind}" for t in timers for kind in ("service", "timer")}
    stale = [n for n in host.get_fact(DirectoryFiles, path=UNITS)
             if n.startswith(prefix) and n.endswith((".service", ".timer")) and n not in wanted]
    changed = False
    if stale:
        gone = [n for n in stale if n.endswith(".timer")]
        if gone:
            yield f"systemctl disable --now {' '.join(shell_quote(n) for n in gone)}"
        yield "rm -f -- " + " ".join(shell_quote(f"{UNITS}/{n}") for n in stale)
        changed = True
    for timer in timers:
        for kind in ("service", "timer"):
            commands = list(upload._inner(src=f"templates/job.{kind}.j2", dest=f"{UNITS}/{prefix}{timer.name}.{kind}",
                                          mode="0644", s=s, timer=timer))
            changed = changed or bool(commands)
            yield from commands
    if changed:
        yield "systemctl daemon-reload"
    if not timers:
        return
    units = [f"{prefix}{t.name}.timer" for t in timers]
    active = host.get_fact(SystemdStatus, services=units)
    enabled = host.get_fact(SystemdEnabled, services=units)
    for unit in units:
        if changed and active.get(unit):
            yield f"systemctl restart {shell_quote(unit)}"  # its new schedule
        if not active.get(unit) or not enabled.get(unit):
            yield f"systemctl enable --now {shell_quote(unit)}"
