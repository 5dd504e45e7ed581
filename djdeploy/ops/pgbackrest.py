"""Backups of PostgreSQL: pgBackRest, with the project's backup host as its repository host.

The db host archives every WAL segment to the backup host as it fills (archive_command,
and at least once a minute: archive_timeout), and the backup host takes the backups (full
or incremental, on its own timers, and before every deploy that migrates), reaching the db
host over SSH: each side's postgres user has a key of its own, made there, which the
other side authorizes from that host's address alone and only to run pgbackrest. The
repository is encrypted (aes-256-cbc) with the project's secret BACKUP_PASSWORD, which
pgBackRest reads on the repository host: unlike restic's (files/backup.sh), this
repository is readable on the host that keeps it (docs/hardening.md says what follows).
A timer on the backup host restores the latest backup into scratch space there and starts
it (files/pgbackrest.sh verify); restore.py puts the cluster back on the db host, as a
backup left it or as it was at a point in time.

Why pgBackRest: in Debian (2.45), it does full, incremental and point-in-time recovery
from one repository, checks every file it keeps (verify), and its repository host needs
only SSH; pg_dump would give neither point in time nor incremental backups.
"""

from __future__ import annotations

import re
import sys

from pyinfra import host
from pyinfra.api import FactBase, FunctionCommand, OperationError, StringCommand, deploy, operation
from pyinfra.operations import files

from djdeploy.config.keys import UNITS
from djdeploy.ops.facts import FileText, PathOwner
from djdeploy.ops.services import timers_waiting
from djdeploy.ops.sftp import HOST_KEY
from djdeploy.ops.system import debian_packages
from djdeploy.ops.backups import ran, said
from djdeploy.ops.uploads import secret_file, upload
from djdeploy.shell import shell_quote
from djdeploy.terminal import printable

PACKAGES = ["pgbackrest"]
HOME = "/var/lib/postgresql"  # the postgres user's, on both hosts (Debian's postgresql-common makes it)
KEY = f"{HOME}/.ssh/id_ed25519"
AUTHORIZED = f"{HOME}/.ssh/authorized_keys"
KNOWN_HOSTS = f"{HOME}/.ssh/known_hosts"
CONF = "/etc/pgbackrest/pgbackrest.conf"
CIPHER = "/etc/pgbackrest/conf.d/cipher.conf"  # the backup host's: the repository's passphrase
TOOL_ENV = "/etc/pgbackrest/djdeploy.env"
TOOL = "/usr/local/sbin/djdeploy-pgbackrest"
REMOTE = "/usr/local/sbin/djdeploy-pgbackrest-remote"  # the other host's key's forced command
STATUS = "/var/lib/pgbackrest/djdeploy-status"
UNIT_PREFIX = "djdeploy-pgbackrest"
VERBS = ("take", "verify")


def stanza(db: str) -> str:
    """The stanza of db host `db`'s cluster (its inventory name, as pgBackRest takes it)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", db)


def units() -> tuple:
    """The backup host's services (each with a .timer): the scheduled backup, the verification."""
    return tuple(f"{UNIT_PREFIX}-{verb}.service" for verb in VERBS)


class PostgresVersion(FactBase):
    """The major version of the newest PostgreSQL cluster `main` here (None: not installed)."""

    def command(self):
        return "ls -1d /etc/postgresql/*/main 2>/dev/null | sort -V | tail -n 1 | cut -d/ -f4; echo ."

    def process(self, output):
        value = output[0].strip() if output else ""
        return value if value not in ("", ".") else None


class SystemId(FactBase):
    """The cluster's system identifier (pg_control), which its backups carry; None while
    PostgreSQL does not answer."""

    def command(self):
        return ("runuser -u postgres -- psql -XAtq -d postgres -c 'SELECT system_identifier FROM pg_control_system()' "
                "2>/dev/null || true; echo .")

    def process(self, output):
        lines = [line.strip() for line in output if line.strip() not in ("", ".")]
        return lines[0] if lines else None


class Archiver(FactBase):
    """PostgreSQL's WAL archiving (pg_stat_archiver): {"archived": epoch of the last segment
    archived, "failed": epoch of the last failure (0: none)}; None while it does not answer."""

    def command(self):
        sql = ("SELECT coalesce(extract(epoch FROM last_archived_time)::bigint, 0) || ' ' || "
               "coalesce(extract(epoch FROM last_failed_time)::bigint, 0) FROM pg_stat_archiver")
        return f"runuser -u postgres -- psql -XAtq -d postgres -c {shell_quote(sql)} 2>/dev/null || true; echo ."

    def process(self, output):
        words = output[0].split() if output else []
        return {"archived": int(words[0]), "failed": int(words[1])} if len(words) == 2 else None


class Stanza(FactBase):
    """The backup host's stanza: {"code": pgBackRest's status code (0 ok, 1 missing, 2 no
    backup...), "system_id": the cluster's it holds, "backups": count}; None when pgBackRest
    is not there."""

    _SCRIPT = ("import json, sys\n"
               "try:\n s = json.load(sys.stdin)[0]\nexcept Exception:\n print('none'); sys.exit()\n"
               "db = s.get('db') or [{}]\n"
               "print(s['status']['code'], db[-1].get('system-id', '-'), len(s.get('backup', [])))")

    def command(self, stanza):
        return (f"command -v pgbackrest > /dev/null && runuser -u postgres -- pgbackrest --stanza={shell_quote(stanza)} "
                f"--output=json info 2>/dev/null | python3 -I -S -c {shell_quote(self._SCRIPT)}; echo .")

    def process(self, output):
        words = output[0].split() if output else []
        if len(words) != 3:
            return None
        return {"code": int(words[0]), "system_id": words[1], "backups": int(words[2])}


DEBIAN_POSTGRES = {"12": "15", "13": "17"}  # what Debian's postgresql package installs


def postgres_version(db) -> str:
    """The PostgreSQL major version on db host `db`: its cluster's, or before one exists (the
    first run plans before anything is installed) the one its Debian release installs."""
    found = db.get_fact(PostgresVersion)
    if found:
        return found
    debian = (db.get_fact(FileText, path="/etc/debian_version") or "12").split(".")[0]
    return DEBIAN_POSTGRES.get(debian, "15")


def conf_text(sections: dict) -> str:
    return "".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in values.items()) + "\n"
                   for name, values in sections.items()).rstrip("\n") + "\n"


@operation()
def settings_file(path: str, text: str):
    """A settings file of pgBackRest's (no secret in it): root:postgres 0640.

    + path: the file
    + text: its content, or a function that gives it when the operation runs (what it
      says may depend on what earlier operations installed: PostgreSQL's version)
    """
    text = text() if callable(text) else text
    if host.get_fact(FileText, path=path) == text.rstrip("\n"):
        return
    quoted = shell_quote(path)
    yield StringCommand(f"mkdir -p {shell_quote(path.rsplit('/', 1)[0])} && cat > {quoted}.part && "
                        f"chown root:postgres {quoted}.part && chmod 0640 {quoted}.part && mv -f {quoted}.part {quoted}",
                        _stdin=[text])


@operation()
def postgres_key():
    """The postgres user's SSH key exists here (made here, never elsewhere), in a ~/.ssh of
    root's (root:postgres 0750): postgres reads its key but cannot change which keys may
    log in as it, nor which host keys it trusts."""
    if host.get_fact(PathOwner, path=f"{HOME}/.ssh") != "root postgres 750":
        yield f"install -d -m 0750 {HOME}/.ssh && chown root:postgres {HOME}/.ssh && chmod 0750 {HOME}/.ssh"
    config = "Host *\n    UpdateHostKeys no\n    StrictHostKeyChecking yes"  # known_hosts is root's: the deploy's
    if host.get_fact(FileText, path=f"{HOME}/.ssh/config") != config:
        yield StringCommand(f"cat > {HOME}/.ssh/config && chmod 0644 {HOME}/.ssh/config", _stdin=[config + "\n"])
    if host.get_fact(FileText, path=f"{KEY}.pub") is None:
        yield (f"rm -f {KEY} {KEY}.pub && ssh-keygen -q -t ed25519 -N '' -C djdeploy-pgbackrest -f {KEY} && "
               f"chown postgres:postgres {KEY} && chmod 0600 {KEY} && chmod 0644 {KEY}.pub")


@operation()
def trusted(peer, address: str, reached_as: str):
    """The postgres user here lets `peer`'s postgres user in, from `address` alone and only
    to run pgbackrest, and knows `peer`'s SSH host key under the name this host reaches it
    by (`reached_as`).

    + peer: the other host (pyinfra's Host)
    + address: where `peer`'s connections come from
    + reached_as: the name or address pgBackRest here connects to `peer` at
    """
    theirs = peer.get_fact(FileText, path=f"{KEY}.pub")
    host_key = peer.get_fact(FileText, path=HOST_KEY)
    if not theirs or not host_key:
        raise OperationError(f"{peer.name} has no postgres SSH key or SSH host key yet: deploy it too")
    authorized = f'restrict,from="{address}",command="{REMOTE}" {theirs.strip()}'
    known = f"{reached_as} {' '.join(host_key.split()[:2])}"
    for path, line in ((AUTHORIZED, authorized), (KNOWN_HOSTS, known)):
        present = host.get_fact(FileText, path=path)
        # ssh adds the peer's other host keys to known_hosts (UpdateHostKeys): ours must be there
        if present != line and (path == AUTHORIZED or line not in (present or "").splitlines()):
            quoted = shell_quote(path)
            yield (f"printf '%s\\n' {shell_quote(line)} > {quoted}.part && chmod 0644 {quoted}.part && "
                   f"mv -f {quoted}.part {quoted}")


def archive_settings(s) -> str:
    """postgresql.conf's lines that archive every WAL segment to the repository."""
    return ("archive_mode = on\n"
            f"archive_command = 'pgbackrest --stanza={stanza(host.name)} archive-push %p'\n"
            "archive_timeout = 60  # a segment at least once a minute: a point in time is at most that far back\n")


@deploy("pgBackRest on the db host")
def database_side(s):
    """The db host: pgBackRest, the postgres user's key, and pgBackRest's settings (the
    repository on the backup host). Archiving itself is postgresql.conf's (postgresql.listen)."""
    debian_packages(name="pgBackRest", packages=PACKAGES)
    postgres_key(name="postgres's SSH key")
    settings_file(name="pgBackRest settings", path=CONF, text=lambda: conf_text({
        "global": {"repo1-host": s.backup_host, "repo1-host-user": "postgres", "log-level-file": "info",
                   "archive-timeout": "120",
                   # the backup host out of reach: WAL waits in pg_wal up to this much, then
                   # is dropped (a gap in point-in-time recovery) rather than fill the disk
                   "archive-push-queue-max": "4GiB"},
        stanza(host.name): {"pg1-path": f"{HOME}/{postgres_version(host)}/main", "pg1-socket-path": "/var/run/postgresql"},
    }))
    tool(s, db=host)


def tool(s, db):
    """files/pgbackrest.sh and its settings (the stanza, PostgreSQL's version on `db`)."""
    settings_file(name="pgBackRest tool's settings", path=TOOL_ENV,
                  text=lambda: f"STANZA={stanza(db.name)}\nVERSION={postgres_version(db)}\n")
    upload(name="pgBackRest tool", src="files/pgbackrest.sh", dest=TOOL, mode="0755")
    upload(name="pgBackRest's remote, alone", src="files/pgbackrest-remote.sh", dest=REMOTE, mode="0755")


@deploy("pgBackRest repository")
def repository(s, db, password: str):
    """The backup host of a PostgreSQL project: pgBackRest and PostgreSQL's server of the db
    host's version (for the verification: no cluster of its own), the postgres user's key,
    the repository's settings and passphrase (root:postgres 0640).

    + db: the db host (pyinfra's Host)
    + password: BACKUP_PASSWORD
    """

    debian_packages(name="pgBackRest", packages=PACKAGES)
    no_cluster(name="No PostgreSQL cluster of its own")
    verification_server(name="PostgreSQL server (the verification's)", db=db)
    postgres_key(name="postgres's SSH key")
    b = s.backups
    settings_file(name="pgBackRest settings", path=CONF, text=lambda: conf_text({
        "global": {"repo1-path": "/var/lib/pgbackrest", "repo1-cipher-type": "aes-256-cbc",
                   # every point in time of the last keep_weekly weeks can be restored
                   "repo1-retention-full-type": "time", "repo1-retention-full": str(max(b.keep_weekly, 1) * 7),
                   "start-fast": "y", "log-level-file": "info", "compress-type": "zst",
                   # one lock for the timers' sandboxed runs (a /tmp of their own) and the others
                   "lock-path": "/var/spool/pgbackrest/lock"},
        stanza(db.name): {"pg1-host": s.backup_db_address, "pg1-host-user": "postgres",
                          "pg1-path": f"{HOME}/{postgres_version(db)}/main", "pg1-socket-path": "/var/run/postgresql"},
    }))
    files.directory(name="pgBackRest's includes", path=CIPHER.rsplit("/", 1)[0], user="root", group="postgres",
                    mode="0750")
    secret_file(name="Repository passphrase", path=CIPHER, text=f"[global]\nrepo1-cipher-pass={password}\n",
                salt=f"djdeploy-pgbackrest:{s.project}", shown="the backup password", group="postgres",
                mode="0640")
    tool(s, db=db)


@operation()
def verification_server(db):
    """PostgreSQL's server of the db host's version (the verification starts its restored
    copy with it), known when the operation runs: the db host installed its own by then.

    + db: the db host (pyinfra's Host)
    """

    yield from debian_packages._inner(packages=[f"postgresql-{postgres_version(db)}"])


@deploy("pgBackRest both ways")
def linked(s, peer):
    """One step of the db host and the backup host (called by both at one line of deploy.py,
    so that it runs after both made their keys): each lets the other in; then, on the
    backup host, the stanza and the timers.

    + s: this host's AppSettings
    + peer: the other host (pyinfra's Host)
    """
    trusted(name="The other host's pgBackRest", peer=peer, address=peer.data.get("ssh_hostname") or peer.name,
            reached_as=s.backup_db_address or s.backup_host)
    stanza_ready(name="pgBackRest stanza", s=s, db=peer)
    timers(name="pgBackRest timers", s=s)


@operation()
def no_cluster():
    """PostgreSQL's packages make no cluster here (the backup host runs none; the
    verification starts its restored copy itself)."""
    conf = "/etc/postgresql-common/createcluster.conf"
    if host.get_fact(FileText, path=conf) is None or "\ncreate_main_cluster = false" not in "\n" + (
            host.get_fact(FileText, path=conf) or ""):
        yield (f"pg_conftool {conf} set create_main_cluster false")


@operation()
def stanza_ready(s, db):
    """The stanza exists and holds a backup of the db host's cluster: made (stanza-create,
    pgBackRest's check of the archive, a first full backup) when missing. A stanza that
    holds another cluster's backups (a fresh db host in place of the one backed up) is left
    as it is, said once: restore.py puts that cluster back, and backups go on after it.

    + s: the backup host's AppSettings
    + db: the db host (pyinfra's Host)
    """
    if not s.backup_db:  # the db host: the backup host makes it
        return
    name = stanza(db.name)
    state = host.get_fact(Stanza, stanza=name)
    theirs = db.get_fact(SystemId)
    if state is not None and state["code"] == 0 and state["system_id"] not in ("-", theirs):
        print(printable(f"    [{host.name}] the backups of {name} are of another cluster (system id "
                        f"{state['system_id']}; {db.name} now has {theirs}): restore.py --limit {db.name} puts it back; "
                        "backups of this cluster go on once it is restored"), file=sys.stderr, flush=True)
        return
    if state is not None and state["code"] == 0 and state["backups"] > 0:
        return
    run = f"runuser -u postgres -- pgbackrest --stanza={shell_quote(name)} --log-level-console=error"
    yield f"{run} stanza-create && {run} check"
    yield f"runuser -u postgres -- {TOOL} take full first"


@operation()
def timers(s):
    """The scheduled backup (full once a week, else incremental) and the verification, each
    a systemd timer on the backup host, enabled and waiting.

    + s: the backup host's AppSettings (on the db host: nothing)
    """
    if not s.backup_db:
        return
    changed = False
    for verb, unit in zip(VERBS, units()):
        for kind in ("service", "timer"):
            name = unit.replace(".service", f".{kind}")
            commands = list(upload._inner(src=f"templates/pgbackrest.{kind}.j2", dest=f"{UNITS}/{name}", mode="0644",
                                          s=s, verb=verb, unit=unit, tool=TOOL))
            changed = changed or bool(commands)
            yield from commands
    if changed:
        yield "systemctl daemon-reload"
    yield from timers_waiting([u.replace(".service", ".timer") for u in units()], changed)


@operation(is_idempotent=False)
def taken(s):
    """A backup now (backup.py, on the backup host), then the proof that it restores.

    + s: the backup host's AppSettings
    """
    yield FunctionCommand(said, (f"runuser -u postgres -- {TOOL} take auto manual", "the backup"), {})
    yield FunctionCommand(said, (f"runuser -u postgres -- {TOOL} verify", "the verification"), {})


def restore_plan(host, what: str) -> None:
    """Print what restoring `what` (latest, a backup label, a time) on the db host would
    replace; a target that cannot be restored stops the run with the tool's line."""
    ok, lines = ran(host, f"{TOOL} plan {shell_quote(what)}")
    if not ok:
        raise OperationError(printable(f"{host.name}: {lines[-1] if lines else 'the backup tool said nothing'}"))
    for line in lines:
        print(printable(f"    [{host.name}] {line}"), file=sys.stderr, flush=True)


def _said_on(state, host, other, command: str, what: str) -> bool:
    return said(state, other, command, what)


def _backed_up_after(state, host, keeper) -> bool:
    """A backup of the restored cluster on `keeper` (the backup host), which the restore's new
    timeline starts from: a later point in time is restored from it. A failure is said;
    the restore stands."""
    if not keeper.connected:  # restore.py --limit <db host>: the backup host is not in the run
        keeper.connect(raise_exceptions=False)
    ok, lines = ran(keeper, f"runuser -u postgres -- {TOOL} take incr after_restore")
    said = lines[-1] if lines else "no output"
    print(printable(f"    [{keeper.name}] {said if ok else 'warning: no backup after the restore: ' + said}"),
          file=sys.stderr, flush=True)
    return True


@operation(is_idempotent=False)
def restored(what: str, on=None, keeper=None):
    """The db host's cluster as backup `what` left it, or as it was at a time (restore.py; a
    rollback past migrations, from the web host that migrates: `on` the db host); then a
    backup of it on `keeper`, which its new timeline starts from.

    + what: "latest", a backup label or a UTC time
    + on: the db host (pyinfra's Host), when this host is not it
    + keeper: the backup host (pyinfra's Host)
    """
    # In a unit of its own: a controller that goes away mid-restore does not stop it half-way.
    unit = "djdeploy-pgbackrest-restore-$(date +%s)"
    command = (f'u={unit}; systemd-run --quiet --wait --collect --unit="$u" {TOOL} restore {shell_quote(what)}; '
               'rc=$?; journalctl -q -o cat -u "$u" -t djdeploy-pgbackrest | tail -n 5; exit $rc')
    if on is None:
        yield FunctionCommand(said, (command, "the restore"), {})
    else:
        yield FunctionCommand(_said_on, (on, command, "the restore"), {})
    if keeper is not None:
        yield FunctionCommand(_backed_up_after, (keeper,), {})


def before_migrations(state, host, keeper, s, release_id: str, origin: str, fresh: bool) -> bool:
    """On the web host that migrates: a backup on the backup host (`keeper`) before the
    migrations; its label in this host's revisions.log. A failed verification or backup
    stops the deploy, unless migrate_without_backup. A new database (`fresh`: no migration
    applied) has nothing to back up yet."""
    status = keeper.get_fact(FileText, path=STATUS) or ""
    failure = next((line.split(" ", 2)[-1] for line in status.splitlines() if line.startswith("verify_failed ")), None)
    log = f"{shell_quote(s.root)}/revisions.log"
    stamp = '"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'

    def logged(text: str) -> None:
        ran(host, f"printf '%s %s %s %s\\n' {stamp} {shell_quote(release_id)} {shell_quote(origin)} "
                  f"{shell_quote(text)} >> {log}")

    if fresh:
        logged("a new database: nothing to back up before its migrations")
        return True
    state = keeper.get_fact(Stanza, stanza=stanza(s.db_host))
    if state is None or state["code"] in (1, 3) or (state["code"] == 2 and not state["backups"]):
        # the backup host joins with this deploy: its stanza and first backup come after
        logged(f"no backup before its migrations: backups on {keeper.name} start with this deploy")
        print(printable(f"    [{host.name}] no backup before its migrations: backups on {keeper.name} start with "
                        "this deploy"), file=sys.stderr, flush=True)
        return True
    if failure and not s.migrate_without_backup:
        raise OperationError(printable(f"the last verification of the backups on {keeper.name} failed ({failure}): "
                                       "fix it and run backup.py, or migrate anyway with --data "
                                       "migrate_without_backup=true"))
    ok, lines = ran(keeper, f"runuser -u postgres -- {TOOL} take incr {shell_quote('before ' + release_id)}")
    if ok and lines and lines[-1].startswith("backup "):
        label = lines[-1].split()[-1]
        logged(f"backed up before its migrations: snapshot {label}")
        print(printable(f"    [{host.name}] backed up before its migrations: {label} on {keeper.name}"),
              file=sys.stderr, flush=True)
        return True
    if not s.migrate_without_backup:
        raise OperationError(printable(f"the backup before the migrations failed on {keeper.name}: "
                                       f"{lines[-1] if lines else 'no output'}; fix it, or migrate anyway with "
                                       "--data migrate_without_backup=true"))
    logged("migrating without a backup (migrate_without_backup)")
    return True
