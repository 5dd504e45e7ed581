"""Before any host changes: every host reachable, every host's data, secrets and
templates valid, or the run stops with one line per problem (djdeploy.errors).

The verbs call `preflight(host.state)` first; `app_settings(host)` and
`host_secrets(host, s)` then give what it checked.
"""

from __future__ import annotations

import ipaddress
import os
import sys

import jinja2
from pyinfra.api.util import get_template
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from djdeploy import build, errors, transport
from djdeploy.config import envfile
from djdeploy.config.keys import BACKUP_PASSWORD, DB_PASSWORD, DB_PORT, ENV_FILE_MAX
from djdeploy.config.secrets import check_backup_passwords, check_database_passwords
from djdeploy.config.appsettings import AppSettings, Process, Timer, batch_size
from djdeploy.config.settings import parse
from djdeploy.errors import DataError, DeployError, fail
from djdeploy.ops.facts import FileText, HostPython, MigrationsAhead
from djdeploy.ops.releases import deployment, last_served, tool_env
from djdeploy.ops.uploads import render_env
from djdeploy.terminal import printable

# id(state) -> {host name: (AppSettings, secrets, database password or None)}: the run's
# plan, made once by preflight; nothing after it changes a host's settings
_prepared: dict[int, dict[str, tuple] | DeployError] = {}
_backup_passwords: dict[tuple[int, str], str] = {}  # (id(state), host name) -> BACKUP_PASSWORD
def preflight(state) -> None:
    """Once per run: every host answered SSH and every host's data is valid.

    pyinfra would go on with the hosts it reached; a fleet half on the new version is
    worse than a deploy that waits until every host answers. All problems are listed.
    Every host's deploy file calls it, each in its own greenlet: the first does the
    checks, the others wait for it (reading a secrets file asks git, which yields), so
    no host goes on with data not yet checked.
    """
    errors.install()  # a DeployError shows as its lines, however the inventory was made
    with build.lock("preflight"):  # one host checks every host; the others wait for it
        if id(state) not in _prepared:
            for host in state.inventory:
                transport.watch(host)
            try:
                _prepared[id(state)] = _checked(state)
            except DeployError as error:
                _prepared[id(state)] = error
        if isinstance(_prepared[id(state)], DeployError):
            raise _prepared[id(state)]


def checked(state) -> dict:
    """{host name: (settings, secrets, database password or None)} of every host, as this
    run's preflight checked them."""
    prepared = _prepared.get(id(state), {})
    return {} if isinstance(prepared, DeployError) else prepared


def _checked(state) -> dict:
    """preflight's checks: {host name: (settings, secrets, password)}, or the run stops."""
    prepared, problems = {}, []
    batches, ports, parsed = {}, {}, {}
    for other in state.inventory:
        if other not in state.failed_hosts:
            try:
                parsed[other.name] = (other, parse(other.name, other.data, other.groups))
            except DataError as error:
                problems += error.problems
    # Hosts that do not answer: the run stops, unless data names them in `without` (a host
    # down for now); then it goes on, saying so, and a later run brings them up to date.
    allowed = {name for _, s in parsed.values() for name in s.without}
    for down in sorted(state.failed_hosts, key=lambda h: h.name):
        if down.name in allowed:
            print(printable(f"warning: going on without {down.name}: it does not answer SSH (without = data); "
                            "the first run that reaches it brings it to the fleet's release"), file=sys.stderr)
            state.failed_hosts.discard(down)  # as told: the run's outcome is the other hosts'
            continue
        problems.append(f"cannot reach {down.name} over SSH (reason above): check its address, port, user and "
                        f"key; or, if it is down for now, go on without it: --data without='[\"{down.name}\"]'; "
                        "no host was changed")
    problems += link_databases(parsed)
    problems += link_balancers(parsed)
    problems += link_files(parsed)
    problems += link_backups(parsed)
    for other, settings in parsed.values():
        if settings.balancer:
            problems += _shared_machine(ports, other.data.get("ssh_hostname") or other.name, other.name, settings)
        if not settings.runs_app:
            prepared[other.name] = (settings, None, None)
            continue
        try:
            batches.setdefault(settings.batch, other.name)
            machine = other.data.get("ssh_hostname") or other.name
            problems += _shared_machine(ports, machine, other.name, settings)
            secrets, password = _secrets(other, settings)
            problems += check_templates(other, settings, secrets)
            prepared[other.name] = (settings, secrets, password)
        except DataError as error:
            problems += error.problems
    problems += check_database_passwords(prepared)
    problems += check_backup_passwords({name: (prepared[name][0], password) for (key, name), password
                                        in _backup_passwords.items() if key == id(state) and name in prepared})
    problems += _whole_site_at_once(parsed, len(state.inventory))
    if len(batches) > 1:  # one switch operation, one batch size (pyinfra's _parallel)
        problems.append(f"batch differs between hosts ({', '.join(f'{b} for {h}' for b, h in batches.items())}): "
                        "set it once, in group_data/all.py or with --data batch=...")
    if problems:
        fail(problems)
    return prepared


def link_balancers(parsed: dict) -> list[str]:
    """Put each project's web hosts behind its balancers (balancer = True, the lb group), in
    place: they serve the balancers plain HTTP on their port (the balancer's front has the
    domain's HTTPS) and trust them to say how a request came (X-Forwarded-Proto)."""
    problems, balancers = [], {}
    for name, (host, s) in parsed.items():
        if s.balancer:
            address = s.balancer_address or host.data.get("ssh_hostname") or name
            try:
                ipaddress.ip_address(address)
            except ValueError:
                problems.append(f"host {name}: the web hosts see the balancer's connections come from an address, "
                                f"not {address!r}: set balancer_address = \"<its IP address>\" for it")
                continue
            balancers.setdefault(s.project, []).append((address, s.health_host))
    for project, found in balancers.items():
        addresses = [address for address, _ in found]
        web = [name for name, (_, s) in parsed.items() if s.runs_app and s.web and s.project == project]
        if not web:
            problems.append(f"project {project}: a balancer ({', '.join(addresses)}) but no web host in the "
                            "inventory to send requests to: add web hosts, or remove the balancer")
        for name in web:
            host, s = parsed[name]
            # Requests come with the balancer's Host (its name, when there is no domain), and
            # so does its health check.
            names = [n for pair in found for n in pair]
            allowed = s.allowed_hosts if "*" in s.allowed_hosts else tuple(dict.fromkeys((*s.allowed_hosts, *names)))
            parsed[name] = (host, replace(s, behind=tuple(addresses), allowed_hosts=allowed))
    return problems


def link_files(parsed: dict) -> list[str]:
    """Point each project's app hosts (they write uploads there over SFTP) and balancers
    (they serve them from there) at its files host (files_server = True, the files group),
    in place. One files host per project."""
    problems, found = [], {}
    for name, (host, s) in parsed.items():
        if s.files_server:
            found.setdefault(s.project, []).append((name, host.data.get("ssh_hostname") or name, s.port))
    for project, hosts in found.items():
        if len(hosts) > 1:
            problems.append(f"project {project}: {len(hosts)} files hosts ({', '.join(h for h, _, _ in hosts)}): "
                            "one holds a project's uploads; put the others in another group")
            continue
        files_name, address, port = hosts[0]
        for name, (host, s) in list(parsed.items()):
            if s.project == project and (s.runs_app or s.balancer):
                parsed[name] = (host, replace(s, uploads_host=address, uploads_from=files_name, uploads_port=port))
    return problems


def link_backups(parsed: dict) -> list[str]:
    """Point each project's hosts at its backup host (backup_server = True, the backup group),
    in place. One backup host per project. On SQLite, its app hosts keep their restic
    repository there, over SFTP, and so does a files host for the uploads; on PostgreSQL,
    the db host's cluster is backed up there by pgBackRest (the backup host its repository
    host, the db host's name on it)."""
    problems, found = [], {}
    for name, (host, s) in parsed.items():
        if s.backup_server:
            found.setdefault(s.project, []).append((name, host.data.get("ssh_hostname") or name))
    for project, hosts in found.items():
        if len(hosts) > 1:
            problems.append(f"project {project}: {len(hosts)} backup hosts ({', '.join(h for h, _ in hosts)}): one "
                            "holds a project's repository; put the others in another group")
            continue
        backup_name, address = hosts[0]
        apps = [name for name, (_, s) in parsed.items() if s.project == project and s.runs_app]
        if not apps:
            problems.append(f"host {backup_name}: backup host of project {project}, which has no app host in the "
                            "inventory: check its project, or remove it")
        for name in apps:
            host, s = parsed[name]
            parsed[name] = (host, replace(s, backup_host=address, backup_from=backup_name))
            if s.database == "postgresql":
                problems += _link_cluster(parsed, s.db_host, backup_name, address)
            if s.uploads_from:  # the files host backs up the uploads it keeps
                files_host, f = parsed[s.uploads_from]
                parsed[s.uploads_from] = (files_host, replace(f, backup_host=address, backup_from=backup_name))
    return problems


def _link_cluster(parsed: dict, db: str, backup_name: str, address: str) -> list[str]:
    """The db host `db` backs up its cluster to `backup_name` (pgBackRest), which learns its
    name and address; a cluster has one repository host."""
    db_host, server = parsed[db]
    if server.backup_from not in (None, backup_name):
        return [f"host {db}: its projects name two backup hosts ({server.backup_from}, {backup_name}); its "
                "PostgreSQL is backed up as a whole, to one: keep one of these backup hosts, and remove the other "
                "from the inventory"]
    parsed[db] = (db_host, replace(server, backup_host=address, backup_from=backup_name))
    keeper, k = parsed[backup_name]
    parsed[backup_name] = (keeper, replace(k, backup_db=db, backup_db_address=server.db_address))
    return []


def backup_clients(state, s: AppSettings) -> list[str]:
    """A backup host: the addresses of the project's hosts that keep a restic repository
    there (app hosts on SQLite, the files host): its SFTP account's clients."""
    hosts = checked(state)
    return [h.data.get("ssh_hostname") or h.name for h in state.inventory
            if h.name in hosts and hosts[h.name][0].restic_backups and hosts[h.name][0].project == s.project]


def project_backup_password(state, project: str) -> str | None:
    """BACKUP_PASSWORD of `project` (one per project, preflight checked): what the backup
    host's pgBackRest repository is encrypted with."""
    hosts = checked(state)
    return next((password for (key, name), password in _backup_passwords.items()
                 if key == id(state) and name in hosts and hosts[name][0].project == project), None)


def app_addresses(state, s: AppSettings) -> list[str]:
    """A files or backup host: the addresses of the project's app hosts (the SFTP account's
    clients)."""
    hosts = checked(state)
    return [h.data.get("ssh_hostname") or h.name for h in state.inventory
            if h.name in hosts and hosts[h.name][0].runs_app and hosts[h.name][0].project == s.project]


def _whole_site_at_once(parsed: dict, total: int) -> list[str]:
    """Behind a balancer, a batch that drains every web host of a project at once would
    leave it none to send requests to."""
    problems = []
    for project in {s.project for _, s in parsed.values() if s.balancer}:
        web = [s for _, s in parsed.values() if s.runs_app and s.web and s.project == project]
        if len(web) > 1 and batch_size(total, web[0].batch) >= len(web):
            problems.append(f"project {project}: batch = {web[0].batch} switches all {len(web)} of its web hosts at "
                            "once, and each is out of its balancer while it switches: the site would have no host "
                            f"left; set batch to at most {len(web) - 1} (or leave it out: 1 at a time)")
    return problems


def balanced(state, s: AppSettings) -> list[tuple[str, str, int, str]]:
    """The web hosts balancer `s` spreads requests over, in inventory order: [(inventory
    name, address it reaches them at, their front's port, their health path)]."""
    hosts = checked(state)
    return [(h.name, h.data.get("ssh_hostname") or h.name, hosts[h.name][0].port, hosts[h.name][0].health_path)
            for h in state.inventory if h.name in hosts and hosts[h.name][0].runs_app and hosts[h.name][0].web
            and hosts[h.name][0].project == s.project]


def balancers_of(state, s: AppSettings) -> list[str]:
    """The balancer hosts of project `s` in this run, by inventory name."""
    hosts = checked(state)
    return [h.name for h in state.inventory if h.name in hosts and hosts[h.name][0].balancer
            and hosts[h.name][0].project == s.project]


def _shared_machine(taken: dict, machine: str, name: str, s: AppSettings) -> list[str]:
    """Projects on one machine share its front: each needs its own site (an HTTPS domain,
    or a plain-HTTP port; HTTPS sites share 80 and 443)."""
    claims = [("domain", s.domain, "already serves it", "another domain") if s.front_tls
              else ("port", s.port, "already listens there", "another port")]
    problems = []
    for key, value, said, fix in claims:
        project, first = taken.setdefault((machine, key, value), (s.project, name))
        if project != s.project:
            problems.append(f"host {name}: {key} = {value}: {project} {said} on the same machine ({first}): "
                            f"give one of them {fix}")
    return problems


def first_app_host(state, s: AppSettings) -> str | None:
    """The first host of the inventory in this run that runs project `s.project` (not a
    database server): where what runs once per deploy runs (the Procfile's release line)."""
    hosts = checked(state)
    return next((h.name for h in state.inventory if h.name in hosts and hosts[h.name][0].runs_app
                 and hosts[h.name][0].project == s.project), None)


def database_clients(state, server_name: str) -> list[dict]:
    """The projects that use database server `server_name`, from their web hosts' checked
    settings: [{"name": database and role, "password", "hosts": [names]}]."""
    projects: dict[str, dict] = {}
    for name, (s, _, password) in checked(state).items():
        if s.database == "postgresql" and s.db_host == server_name:
            entry = projects.setdefault(s.db_name, {"name": s.db_name, "hosts": [], "password": password})
            entry["hosts"].append(name)
    return [projects[key] for key in sorted(projects)]


def migrates_here(host, s: AppSettings) -> bool:
    """Whether `host` runs the migrations of `s`'s shared database: the first of the
    project's web hosts in the inventory."""
    hosts = checked(host.state)
    for other in host.state.inventory:
        if other.name in hosts:
            theirs = hosts[other.name][0]
            if theirs.runs_app and (theirs.db_host, theirs.db_name) == (s.db_host, s.db_name):
                return other.name == host.name
    return False


def key_source(host, s: AppSettings) -> str | None:
    """The host whose SECRET_KEY every host of `s`'s site has: the first, in the inventory,
    of the project's hosts that share its PostgreSQL database (None on SQLite, where each
    host is a site of its own)."""
    if s.database != "postgresql":
        return None
    hosts = checked(host.state) or {host.name: (s, None, None)}
    for other in host.state.inventory:
        theirs = hosts.get(other.name, (None,))[0]
        if theirs is not None and theirs.runs_app and theirs.project == s.project and (
                theirs.db_host, theirs.db_name) == (s.db_host, s.db_name):
            return other.name
    return None


def timers_here(host, s: AppSettings) -> list:
    """The timers of `s` this host runs. Each runs on one host of the fleet: the one its
    data names (host = "..."), or else the first host of the inventory whose checked
    settings have it (from data or the app's own file)."""
    hosts = checked(host.state) or {host.name: (s, None, None)}
    here = []
    for timer in s.timers:
        # The app hosts of this project that have it (a database server runs no job).
        having = [h.name for h in host.state.inventory if h.name in hosts and hosts[h.name][0].runs_app
                  and hosts[h.name][0].project == s.project and timer in hosts[h.name][0].timers]
        if timer.host is not None and timer.host not in having:
            fail(f"host {host.name}: timers.{timer.name}.host = {timer.host!r}: not an app host that has this "
                 f"timer: use one of {', '.join(having)}, or leave it out (the first of them runs it)")
        if (timer.host or having[0]) == host.name:
            here.append(timer)
    return here


def link_databases(parsed: dict) -> list[str]:
    """Point each app host at its database, in place: `database` unset means PostgreSQL
    when the inventory has a database server (database_server = True), else SQLite."""
    servers = [name for name, (_, s) in parsed.items() if s.database_server]
    problems = []
    if len(servers) > 1:
        problems.append(f"{len(servers)} database servers ({', '.join(servers)}): one host may set "
                        "database_server = True (the db group); the others use it")
    for name, (host, s) in list(parsed.items()):
        if not s.runs_app:
            continue
        wanted = s.database if s.database != "auto" else ("postgresql" if servers else "sqlite")
        if wanted == "postgresql" and not servers:
            problems.append(f"host {name}: database = \"postgresql\" but no host is a database server: "
                            "add one to the db group (database_server = True), or use \"sqlite\"")
            parsed[name] = (host, replace(s, database="sqlite"))  # so its other checks still run
            continue
        if wanted == "postgresql":
            server = parsed[servers[0]][1]
            s = replace(s, database=wanted, db_host=servers[0], db_address=server.db_address,
                        required_secrets=tuple(dict.fromkeys((*s.required_secrets, DB_PASSWORD))))
        else:
            s = replace(s, database=wanted)
        parsed[name] = (host, s)
    return problems


TEMPLATES = Path("templates")


def check_templates(host, s: AppSettings, secrets) -> list[str]:
    """Render every template in templates/ for this host now, so a broken one stops the run
    before any host changed (pyinfra would render each only when its operation runs)."""
    problems = []
    for path in sorted(TEMPLATES.glob("*.j2")):
        try:
            if path.name == "env.j2":
                size = len(render_env(str(path), s, secrets).encode())
                if size > ENV_FILE_MAX:
                    problems.append(f"host {host.name}: .env would be {size:,} bytes, more than {ENV_FILE_MAX:,} "
                                    "(Linux passes it to the app with its arguments): keep large data in files")
            else:  # compiled once per run, in pyinfra's cache, which files.template then uses
                source = os.path.join(host.state.cwd, str(path)) if host.state.cwd else str(path)
                # A scheduled job's units: once per timer (or a stand-in, to find what breaks the template).
                timers = (s.timers or (Timer("check", "check", "daily"),)) if path.name.startswith("job.") else (None,)
                # A process type's unit: once per type (or a stand-in).
                kinds = (s.processes or (Process("check", "check"),)) if path.name == "process.service.j2" else (None,)
                for timer in timers:
                    for process in kinds:
                        get_template(source).render(s=s, py=repr, host=host, state=host.state,
                                                    inventory=host.state.inventory, timer=timer, process=process,
                                                    servers=[("check", "127.0.0.1", 80, "/")],  # a balancer's (stand-in)
                                                    a=s.uploads_account, verb="take", unit="check.service",
                                                    conf=[], tool="/check")  # an SFTP account's, a backup unit's (stand-ins)
        except jinja2.TemplateSyntaxError as error:
            problems.append(f"{path} line {error.lineno}: {error.message}: fix the template")
        except (jinja2.UndefinedError, AttributeError, TypeError) as error:
            line = _template_line(error, path)
            problems.append(f"{path}{line}: {error} (for host {host.name}): fix the template")
    return problems


def _template_line(error, path) -> str:
    tb = error.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in ("<template>", str(path)):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line else ""


def app_settings(host) -> AppSettings:
    """This host's settings, as `preflight` checked and linked them (it runs first if it
    has not yet): one truth for every operation."""
    if host.name not in checked(host.state):
        preflight(host.state)
    return checked(host.state)[host.name][0]


def host_python(host) -> tuple:
    """The host's python3 as (version, machine), or the run stops with one line: no
    python3, or one outside the Pythons djdeploy deploys to (build.PYTHONS)."""
    found = host.get_fact(HostPython)
    if found is None:
        fail([f"host {host.name}: has no python3 (every Debian server image has it): "
              "install it there (apt-get install python3), then deploy again; no host was changed"])
    if not build.python_supported(found[0]):
        oldest, newest = build.PYTHONS
        fail([f"host {host.name}: its python3 says it is Python {found[0]}, outside the Pythons djdeploy deploys "
              f"to ({oldest} to {newest}; Debian 12 has 3.11, Debian 13 3.13): check `python3 --version` there, "
              "or deploy to a supported Debian; no host was changed"])
    return found


def backup_password(host) -> str:
    """This app host's BACKUP_PASSWORD (restic's repository key), as preflight checked it."""
    return _backup_passwords[(id(host.state), host.name)]


def host_secrets(host, s: AppSettings):
    """This host's secrets (see djdeploy.config.envfile), as `preflight` checked them."""
    prepared = checked(host.state).get(host.name)
    return prepared[1] if prepared and prepared[0] is s else _secrets(host, s)[0]


def _secrets(host, s: AppSettings) -> tuple:
    """(secrets, database password or None) of a host: its secrets checked against its
    settings; on PostgreSQL the app gets DATABASE_URL, and the password alone stays out
    of .env (the database server's role is made from it)."""
    taken = {**s.environment, "DATABASE_URL": ""} if s.database == "postgresql" else s.environment
    required = (*s.required_secrets, *((BACKUP_PASSWORD,) if s.backup_host else ()))
    secrets = envfile.load(host.name, host.groups, required, taken=taken)
    backup = secrets.pop(BACKUP_PASSWORD, None)  # the backup tool's alone: never in the app's .env
    if backup is not None and s.backup_host:
        _backup_passwords[(id(host.state), host.name)] = backup
    if s.database != "postgresql":
        return secrets, None
    password = secrets.pop(DB_PASSWORD)
    address = f"[{s.db_address}]" if ":" in s.db_address else s.db_address
    secrets["DATABASE_URL"] = (f"postgres://{s.db_name}:{quote(password, safe='')}@{address}:"
                               f"{DB_PORT}/{s.db_name}")
    return secrets, password


def rollback_target(host, s: AppSettings) -> str:
    """The release rollback.py goes to on this host: --data release, else `previous`.

    Checked on every host before anything changes: a host without it stops the run.
    """
    deployed = deployment(s)
    target = s.release or deployed["previous"]
    if target is None:
        fail([f"host {host.name}: no previous release to roll back to (releases: "
              f"{', '.join(deployed['releases']) or 'none'}): deploy first, or name one with --data release=<id>"])
    if target not in deployed["releases"]:
        fail([f"host {host.name}: release {target} is not on this host (releases: "
              f"{', '.join(deployed['releases']) or 'none'}): name one of them with --data release=<id>"])
    return target


def rollback_data(host, s: AppSettings, target: str) -> tuple:
    """What a rollback to `target` does to the database on this host: ("", None) when the
    database has no migration the release does not know (or another host runs them:
    PostgreSQL); ("reverse", {app: last migration it knows}) or ("restore", snapshot) as
    data's rollback_data says; else the run stops, naming the migrations and both ways."""
    if s.database == "postgresql" and not migrates_here(host, s):
        return "", None
    ahead = host.get_fact(MigrationsAhead, tool=s.release_tool, tool_env=tool_env(s), release=target)
    if ahead is None:
        fail([f"host {host.name}: release {target} could not list the migrations it knows (release.sh migrations "
              f"{target}): check it with exec.py, or roll back to another release"])
    if not ahead["unknown"]:
        return "", None
    names = ", ".join(ahead["unknown"])
    if s.rollback_data == "reverse":
        return "reverse", ahead["known"]
    snapshot, taken = _backup_before(host, s, target)
    if s.rollback_data == "restore" and s.database == "postgresql" and snapshot:
        # The cluster holds every database of the db host: said before anything changes.
        print(printable(f"    [{host.name}] restoring {s.db_host}'s whole cluster as backup {snapshot} left it "
                        f"(taken {taken}, before {names}): what every database of it was written since is lost"),
              file=sys.stderr, flush=True)
    if s.rollback_data == "restore":
        if snapshot is None:
            fail([f"host {host.name}: no backup was taken before the migrations release {target} does not know "
                  f"({names}): roll back with --data rollback_data=reverse instead"])
        return "restore", snapshot
    restore = (f" or --data rollback_data=restore (puts back backup {snapshot}, taken {taken} before them: data "
               "written since is lost)" if snapshot else " (no backup was taken before them here to restore)")
    fail([f"host {host.name}: release {target} does not know migrations the database has applied: {names}; "
          f"roll back with --data rollback_data=reverse (the current release runs them backwards where Django can; "
          f"what they added is dropped){restore}"])


def _backup_before(host, s: AppSettings, target: str) -> tuple:
    """The snapshot a release after `target` took before its migrations (revisions.log: the
    first after `target` last served), and when: (id, time) or (None, None)."""
    if not s.backup_host:
        return None, None
    lines = (host.get_fact(FileText, path=f"{s.root}/revisions.log") or "").splitlines()
    served = last_served(lines, target)
    for line in lines[0 if served is None else served + 1:]:
        if "backed up before its migrations: snapshot " in line:
            return line.rsplit(" ", 1)[-1], line.split(" ", 1)[0]
        if "migrating without a backup" in line:  # what came before it was never kept
            return None, None
    return None, None


def build_release(host, s: AppSettings, python: str, machine: str) -> build.Release:
    """`build.release` for a host's settings and Python, or the run stops with one line (before
    any host changed: hosts are planned before anything runs).

    Each Python (and machine) has its own lock, resolved for it alone: every host gets
    what its own Python can run, and no host's answer changes what another installs. A
    failure names every host of the run that shares that Python."""
    try:
        return build.release(s.app_path, s.requirements, python, machine, s.source_builds,
                             "--dry" in sys.argv[1:],  # a dry run builds nothing from source
                             s.linked, build.UPLOADS if s.uploads_host else ())
    except build.BuildError as error:
        same = [host.name, *(h for h in _hosts_on(host.state, s, python, machine) if h != host.name)]
        fail([f"{'hosts' if len(same) > 1 else 'host'} {', '.join(same)}: {error}; no host was changed"])


def _hosts_on(state, s: AppSettings, python: str, machine: str) -> list[str]:
    """The run's app hosts that install `s.requirements` on `python` (`machine`)."""
    hosts = checked(state)
    found = []
    for other in state.inventory:
        theirs = hosts.get(other.name, (None,))[0]
        if theirs is None or not theirs.runs_app or theirs.requirements != s.requirements:
            continue
        try:
            if host_python(other) == (python, machine):
                found.append(other.name)
        except DeployError:
            continue
    return found
