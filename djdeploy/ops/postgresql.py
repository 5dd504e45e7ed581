"""The shared database: PostgreSQL on the database server, migrations once per deploy.

The database server (a host with `database_server = True`, the db group) gets Debian's
PostgreSQL, listening on localhost and the address the web hosts reach it at, and per
project one role and one database. pg_hba lets in that role, from the project's web
hosts only, with scram-sha-256. The role's password is the web hosts' DATABASE_PASSWORD
secret: the server only ever receives its SCRAM verifier, computed here and sent over
stdin, and the run compares digests of it, so neither shows in any output.

Migrations run on one web host per project (the first in the inventory), after every
host has its release ready and before any switches, under a PostgreSQL advisory lock.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import ipaddress
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FactBase, FunctionCommand, StringCommand, deploy, operation
from pyinfra.operations import systemd

from djdeploy.ops.facts import FileText
from djdeploy.ops.releases import tool_env
from djdeploy.ops.system import debian_packages
from djdeploy.shell import CONTROLLER, shell_quote, touching

PSQL = "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1"
FIND_CLUSTER = "ls -1d /etc/postgresql/*/main 2>/dev/null | sort -V | tail -n 1"  # the newest version's
# The cluster's folder, found when the command runs: a dry run on a server where the
# package step has yet to install PostgreSQL cannot know its version.
CLUSTER = (f'd=$({FIND_CLUSTER}) && '
           '{ [ -n "$d" ] || { echo "PostgreSQL has no cluster main under /etc/postgresql" >&2; exit 1; }; }')
HBA_MARK = "# {} djdeploy {}"


def scram_verifier(password: str, role: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of `password` (printable ASCII: SASLprep leaves
    it as it is). The salt comes from the password and role, so the same password gives
    the same verifier and a second run has nothing to change."""
    salt = hmac.new(password.encode(), b"djdeploy-scram:" + role.encode(), hashlib.sha256).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_digest(verifier: str, role: str) -> str:
    """What the PostgresRole fact reports for a role with this verifier."""
    return hashlib.sha256(f"djdeploy-role:{role}:{verifier}".encode()).hexdigest()


def hba_address(name: str) -> str:
    """A pg_hba address field: an IP as a single-host network, a host name as it is."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name
    return f"{ip}/{32 if ip.version == 4 else 128}"


# --- facts ------------------------------------------------------------------------


class PostgresCluster(FactBase):
    """Debian's PostgreSQL cluster `main`: its config folder, or None when not installed."""

    def command(self):
        return FIND_CLUSTER

    def process(self, output):
        return output[0].strip() if output and output[0].strip() else None


class PostgresRole(FactBase):
    """A role and its database: {"role": "absent" | "login <digest>", "owner": owner of the
    database or "absent"}; None while PostgreSQL does not answer. The digest is of the
    role's verifier, salted (verifier_digest), never the verifier itself."""

    def command(self, role, database):
        sql = (f"SELECT coalesce((SELECT CASE WHEN rolcanlogin THEN 'login ' ELSE 'nologin ' END || "
               f"encode(sha256(convert_to('djdeploy-role:{role}:' || coalesce(rolpassword, ''), 'UTF8')), 'hex') "
               f"FROM pg_authid WHERE rolname = '{role}'), 'absent') || '|' || "
               f"coalesce((SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'), 'absent')")
        return f"{PSQL} -d postgres -c {shell_quote(sql)} 2>/dev/null || true"

    def process(self, output):
        line = "".join(output).strip()
        if "|" not in line:
            return None
        role, owner = line.split("|", 1)
        return {"role": role, "owner": owner}


class AppliedMigrations(FactBase):
    """Django's applied migrations in a database, as "app.name" (empty before the first)."""

    @staticmethod
    def default():
        return []

    def command(self, database):
        sql = "SELECT app || '.' || name FROM django_migrations ORDER BY id"
        return f"{PSQL} -d {shell_quote(database)} -c {shell_quote(sql)} 2>/dev/null || true"

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


# --- the database server ----------------------------------------------------------


@operation()
def listen(addresses: list[str], archive: str = ""):
    """PostgreSQL listens on `addresses` only (conf.d/djdeploy.conf of the main cluster),
    and archives its WAL as `archive` says (pgBackRest's settings, or none).

    + addresses: localhost and where the web hosts reach it
    + archive: postgresql.conf lines (djdeploy.ops.pgbackrest.archive_settings)
    """
    cluster = host.get_fact(PostgresCluster)
    text = ("# Written by the deploy: listen only where the web hosts reach this server.\n"
            f"listen_addresses = '{', '.join(addresses)}'\n{archive}")
    if cluster and host.get_fact(FileText, path=f"{cluster}/conf.d/djdeploy.conf") == text.strip():
        return
    yield StringCommand(f'{CLUSTER} && cat > "$d/conf.d/djdeploy.conf"', _stdin=[text])


@operation()
def hba(project: str, database: str, role: str, addresses: list[str]):
    """pg_hba.conf lets `role` into `database` from `addresses` only, with scram-sha-256;
    the project's block, between its markers, is replaced as a whole.

    + project: names the block (other projects keep theirs)
    + database, role: what the web hosts connect to and as
    + addresses: the web hosts
    """
    cluster = host.get_fact(PostgresCluster)
    present = host.get_fact(FileText, path=f"{cluster}/pg_hba.conf") if cluster else None
    begin, end = HBA_MARK.format("BEGIN", project), HBA_MARK.format("END", project)
    block = [begin, "# Written by the deploy: the web hosts of this project, nothing else."]
    block += [f"host {database} {role} {hba_address(a)} scram-sha-256" for a in addresses]
    block.append(end)
    lines = (present or "").splitlines()
    if begin in lines and end in lines:
        start, stop = lines.index(begin), lines.index(end)
        wanted = lines[:start] + block + lines[stop + 1:]
    else:
        wanted = lines + block
    if wanted == lines:
        return
    logger.info(f"{host.print_prefix}pg_hba: {database} from {', '.join(addresses)}")
    if present is None:  # not installed yet (dry run): the block goes after Debian's lines
        yield StringCommand(f'{CLUSTER} && cat >> "$d/pg_hba.conf"', _stdin=["\n".join(block) + "\n"])
        return
    yield StringCommand(f'{CLUSTER} && t="$d/pg_hba.conf.djdeploy" && umask 077 && cat > "$t" && '
                        f'chown postgres:postgres "$t" && chmod 0640 "$t" && mv -f "$t" "$d/pg_hba.conf"',
                        _stdin=["\n".join(wanted) + "\n"])


@operation()
def role_and_database(role: str, password: str):
    """A login role `role` with `password` and a database of the same name it owns, closed
    to others.

    + role: the role's and database's name (a plain SQL name)
    + password: the role's password (the web hosts' DATABASE_PASSWORD)

    Only the SCRAM verifier reaches the server, through psql's stdin.
    """
    verifier = scram_verifier(password, role)
    present = host.get_fact(PostgresRole, role=role, database=role) or {"role": "absent", "owner": "absent"}
    sql = []
    if present["role"] == "absent":
        sql.append(f"CREATE ROLE {role} LOGIN PASSWORD '{verifier}';")
    elif present["role"] != f"login {verifier_digest(verifier, role)}":
        sql.append(f"ALTER ROLE {role} LOGIN PASSWORD '{verifier}';")
    if present["owner"] == "absent":
        sql += [f"CREATE DATABASE {role} OWNER {role};", f"REVOKE ALL ON DATABASE {role} FROM PUBLIC;"]
    elif present["owner"] != role:
        sql.append(f"ALTER DATABASE {role} OWNER TO {role};")
    if not sql:
        return
    what = [{"C": "created", "A": "altered"}[s[0]] + " " + " ".join(s.split()[1:3]).lower() for s in sql[:2]]
    logger.info(f"{host.print_prefix}PostgreSQL: {', '.join(what)} (password not shown)")
    yield StringCommand(f"{PSQL} -d postgres", _stdin=[line + "\n" for line in sql])


@deploy("PostgreSQL for the web hosts")
def server(s, projects: list[dict]):
    """Debian's PostgreSQL, listening for the web hosts; a role and database per project
    (`projects`, preflight.database_clients: [{"name", "password", "hosts"}]); with a backup
    host, pgBackRest archiving its WAL there (djdeploy.ops.pgbackrest)."""
    from djdeploy.ops import pgbackrest

    debian_packages(name="PostgreSQL package", packages=["postgresql"])
    if s.backup_host:
        pgbackrest.database_side(s)
    listening = listen(name="PostgreSQL listens for the web hosts", addresses=["localhost", s.db_address],
                       archive=pgbackrest.archive_settings(s) if s.backup_host else "")
    allowed = [hba(name=f"pg_hba for {p['name']}", project=p["name"], database=p["name"], role=p["name"],
                   addresses=p["hosts"]) for p in projects]
    systemd.service(name="PostgreSQL running", service="postgresql", running=True, enabled=True)
    systemd.service(name="PostgreSQL restarted for new addresses", service="postgresql", restarted=True,
                    _if=listening.did_change)
    systemd.service(name="PostgreSQL reloads pg_hba", service="postgresql", reloaded=True,
                    _if=lambda: any(op.did_change() for op in allowed) and not listening.did_change())
    for p in projects:
        role_and_database(name=f"Role and database {p['name']}", role=p["name"], password=p["password"])


# --- migrations -------------------------------------------------------------------


def migration_names(app_path: Path) -> list[str]:
    """The project's migrations, "app.name", from its */migrations/ folders."""
    found = []
    for folder in sorted(app_path.glob("**/migrations")):
        if (folder / "__init__.py").is_file():
            found += [f"{folder.parent.name}.{p.stem}" for p in sorted(folder.glob("*.py"))
                      if p.stem != "__init__"]
    return found


def lock_key(project: str) -> int:
    """The advisory lock every deploy of `project` migrates under (a positive bigint)."""
    return int(hashlib.sha256(f"djdeploy-migrate:{project}".encode()).hexdigest()[:15], 16)


@operation()
def migrations(s, release_id: str, here: bool, keeper=None):
    """The shared database has every migration of release `release_id`: applied once,
    by one host of the project, under an advisory lock; the other hosts yield nothing.
    A dry run lists the migrations that would run. With a backup host (`keeper`), the
    cluster is backed up first (pgBackRest), its label in revisions.log.

    + s: the host's AppSettings
    + release_id: the release, ready on this host (releases.release)
    + here: this host is the project's one that migrates (preflight.migrates_here)
    + keeper: the backup host (pyinfra's Host), or None
    """
    if s.database != "postgresql" or not here:
        return
    server = host.state.inventory.get_host(s.db_host)
    applied = set(server.get_fact(AppliedMigrations, database=s.db_name))
    pending = [m for m in migration_names(s.app_path) if m not in applied]
    if not pending and host.get_fact(FileText, path=f"{s.root}/.migrated") == release_id:
        return
    logger.info(f"{host.print_prefix}migrations for {s.db_name} on {s.db_host}: "
                f"{', '.join(pending) or 'none of the project (checks those of its packages)'}")
    if pending and keeper is not None:
        from djdeploy.ops import pgbackrest

        yield FunctionCommand(pgbackrest.before_migrations, (keeper, s, release_id, f"{getpass.getuser()}@{CONTROLLER}",
                                                                 not applied),
                              {})
    yield touching(f"{tool_env(s)} {shell_quote(s.release_tool)} migrate {shell_quote(release_id)} "
                   f"{lock_key(s.project)}", s.root)  # the database, and .migrated
