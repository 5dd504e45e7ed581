"""The deploy's data: every default in one place, and the checked settings of a host.

group_data/*.py and `--data` override DEFAULTS; `app_settings(host)` turns a host's
data into an `AppSettings`, or stops the run with one line saying what is wrong.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

from djdeploy import schema

DEFAULTS = {
    "project": "my_awesome_project",  # /srv/<project>, <project>.service
    "app_path": "app",  # the Django project to deploy (the folder holding manage.py)
    "requirements": None,  # its requirements file; default: requirements.txt beside manage.py
    "wsgi_module": None,  # what gunicorn serves; default: the app's WSGI_APPLICATION
    "settings_module": None,  # the app's own settings; default: what its manage.py names
    "keep_app_settings": [],  # production settings the deploy does not override (see OVERRIDES)
    "serve_files": True,  # the deploy's WSGI entry serves STATIC_URL and MEDIA_URL (False: the app or a front does)
    "debian_packages": [],  # what the app needs from Debian beyond Python, e.g. ["gettext"]
    "release_commands": [],  # manage.py commands run in each new release before it serves, e.g. "compress"
    "app_env": {},  # extra variables for .env
    "app_user": None,  # required: the system user gunicorn runs as
    "app_group": None,  # defaults to app_user
    "port": None,  # required: where gunicorn listens, on all addresses
    "workers": 2,  # gunicorn worker processes
    "allowed_hosts": None,  # defaults to the host's inventory name, localhost, 127.0.0.1
    "description": None,  # the unit's Description=; defaults to "<project> (gunicorn)"
    "listen": "socket",  # "socket": systemd holds the port (zero-downtime restarts);
    #                      "ambient": gunicorn binds it (AmbientCapabilities, the seed's unit)
    "keep_releases": 5,  # releases kept per host (never deleting current or previous)
    "batch": None,  # hosts switched at once: a count or "N%"; default 1 above 2 hosts, else all
    "health_path": None,  # GET after each restart; 200 or the switch is reverted; default: the
    #                       deploy's own endpoint (UP_PATH: the database, then GET / through the app)
    "health_host": None,  # Host header of that GET; defaults to the first allowed host
    "health_timeout": 5,  # seconds per attempt
    "health_retries": 15,  # attempts, a second apart
    "check_level": "ERROR",  # manage.py check --deploy --fail-level before a release serves
    "lock_wait": 30,  # seconds a deploy waits for another one's lock on a host
    "required_secrets": [],  # names the app needs from secrets/<group>.toml or DJDEPLOY_SECRET_<NAME>
    "srv": "/srv",  # where projects live: /srv/<project>
    "allow_outside_srv": False,  # True to let srv be another absolute folder
    "release": None,  # rollback.py: the release to go back to (default: the previous one)
    "database": None,  # "sqlite" (each host its own, in shared/data) or "postgresql" (on the
    #                    database server); default: postgresql if the inventory has a server
    "database_server": False,  # True for the db group: runs PostgreSQL for the web hosts, not the app
    "db_address": None,  # database server: where web hosts reach it and it listens (default: its name)
    "db_name": None,  # the project's database and role; default: the project, as a SQL name
}
REQUIRED = ("app_user", "port")  # of hosts that run the app
DATABASES = ("sqlite", "postgresql")
DB_PASSWORD = "DATABASE_PASSWORD"  # the secret the role's password comes from
DB_PORT = 5432  # Debian's PostgreSQL, as installed
SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
SAFE_PROJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEALTH_PATH = re.compile(r"^/[A-Za-z0-9_./:@%+,=-]*$")  # a plain URL path
LISTEN_MODES = ("socket", "ambient")
CHECK_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
BATCH = re.compile(r"^([1-9][0-9]*)(%?)$")
SRV = "/srv"
# What production needs, set by the deploy's settings module on top of the app's own
# (templates/settings.py.j2); `keep_app_settings` leaves any of them as the app has it.
OVERRIDES = ("ALLOWED_HOSTS", "DEBUG", "SECRET_KEY", "DATABASES", "STATIC_ROOT", "MEDIA_ROOT",
             "CSRF_TRUSTED_ORIGINS", "LOGGING")
UP_PATH = "/-/up"  # the deploy's health endpoint, answered before the app's URL routing (files/djdeploy_wsgi.py)
SETTINGS_MODULE = "djdeploy_settings"
# What .env holds for the deploy itself (AppSettings.environment): app_env may not replace them.
DEPLOY_VARIABLES = ("VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "DJDEPLOY_APP_WSGI", "PYTHONPATH",
                    "DJDEPLOY_SERVE_FILES", "DJANGO_SECRET_KEY_FILE", "PORT")  # DJANGO_SETTINGS_MODULE on the hosts: imports the app's, then OVERRIDES


class DataError(Exception):
    """Mistakes in group data, host data or --data: one line each for the user."""

    def __init__(self, problems):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is fine; a line break would end the line


def check_value(where: str, key: str, value) -> str:
    """`value` as .env can hold it, or a DataError that names the key (never the value)."""
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} must be a string, not {type(value).__name__}: quote it")
    odd = next((c for c in value if (ord(c) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(c) <= 0xFDEF
                or 0xD800 <= ord(c) <= 0xDFFF), None)
    if odd:  # systemd refuses the whole file over one of these
        raise DataError(f"{where}: {key} holds U+{ord(odd):04X}, not a character systemd accepts in "
                        "an environment file: remove it, or base64-encode the value")
    match = CONTROL.search(value)
    if match:
        what = {"\n": "a line break", "\r": "a carriage return"}.get(match.group(), "a control character")
        raise DataError(f"{where}: {key} holds {what} (at character {match.start() + 1}), which .env "
                        "cannot hold: keep the value on one line, or base64-encode it")
    return value


@dataclass(frozen=True)
class AppSettings:
    """What one host gets, with every path derived from the data."""

    project: str
    app_path: Path
    requirements: Path
    wsgi_module: str
    settings_module: str
    app_env: dict
    user: str
    group: str
    port: int
    workers: int
    allowed_hosts: tuple
    description: str
    listen: str
    keep_releases: int
    batch: str | None
    health_path: str
    health_host: str
    health_timeout: int
    health_retries: int
    check_level: str
    lock_wait: int
    release: str | None
    required_secrets: tuple = ()
    srv: str = SRV
    database: str = "sqlite"
    database_server: bool = False  # this host runs PostgreSQL for the others, not the app
    db_name: str = ""
    db_host: str | None = None  # the database server's inventory name (postgresql)
    db_address: str | None = None  # where PostgreSQL listens and the web hosts reach it
    keep_app_settings: tuple = ()  # OVERRIDES the deploy leaves as the app has them
    release_commands: tuple = ()  # manage.py commands, each shell-quoted words
    debian_packages: tuple = ()  # the app's own needs from Debian
    serve_files: bool = True

    @property
    def overrides(self) -> tuple:
        """The production settings the deploy sets on top of the app's (OVERRIDES, less those kept)."""
        return tuple(name for name in OVERRIDES if name not in self.keep_app_settings)

    @property
    def root(self) -> str:
        return f"{self.srv.rstrip('/')}/{self.project}"

    @property
    def releases_dir(self) -> str:
        return f"{self.root}/releases"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def venvs_dir(self) -> str:
        return f"{self.root}/venvs"

    @property
    def wheels_dir(self) -> str:
        return f"{self.root}/wheels"

    @property
    def shared_dir(self) -> str:
        return f"{self.root}/shared"

    @property
    def data_dir(self) -> str:
        return f"{self.shared_dir}/data"

    @property
    def csrf_origins(self) -> list:
        """The origins CSRF trusts: every allowed host (a leading dot: its subdomains), by
        http on the app's port and by https."""
        port = "" if self.port == 80 else f":{self.port}"
        names = [("*" + h if h.startswith(".") else h) for h in self.allowed_hosts if h != "*"]
        return [f"http://{h}{port}" for h in names] + [f"https://{h}" for h in names]

    @property
    def media_dir(self) -> str:
        return f"{self.shared_dir}/media"

    @property
    def django_dir(self) -> str:
        """The deploy's Python modules for the app: its settings and its WSGI entry."""
        return f"{self.root}/django"

    @property
    def settings_file(self) -> str:
        return f"{self.django_dir}/{SETTINGS_MODULE}.py"

    @property
    def wsgi_file(self) -> str:
        return f"{self.django_dir}/djdeploy_wsgi.py"

    @property
    def env_file(self) -> str:
        return f"{self.shared_dir}/.env"

    @property
    def secret_key_file(self) -> str:
        return f"{self.shared_dir}/secret_key"

    @property
    def release_tool(self) -> str:
        return f"{self.root}/release.sh"

    @property
    def lock_dir(self) -> str:
        return f"{self.root}/.deploy-lock"

    @property
    def gunicorn_config(self) -> str:
        return f"{self.root}/gunicorn.conf.py"

    @property
    def config_files(self) -> tuple:
        """Every file the app reads when it starts: a change to one owes a restart."""
        return (self.env_file, self.secret_key_file, f"{self.root}/run", self.gunicorn_config,
                self.unit_file, self.socket_file, self.settings_file, self.wsgi_file)

    @property
    def unit(self) -> str:
        return f"{self.project}.service"

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}"

    @property
    def unit_socket(self) -> str:
        return f"{self.project}.socket"

    @property
    def socket_file(self) -> str:
        return f"/etc/systemd/system/{self.unit_socket}"

    @property
    def environment(self) -> dict:
        """Everything .env holds, in order."""
        env = {
            "VIRTUAL_ENV": f"{self.current}/venv",  # the run script pins the release it starts
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,  # the app's own, then what production needs
            "DJDEPLOY_APP_WSGI": self.wsgi_module,  # what the deploy's WSGI entry serves
            "PYTHONPATH": self.django_dir,  # where those two modules are
            "DJDEPLOY_SERVE_FILES": "1" if self.serve_files else "0",  # static files and uploads
            "DJANGO_SECRET_KEY_FILE": self.secret_key_file,
            "DJANGO_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "PORT": str(self.port),
        }
        if self.database != "postgresql":  # postgresql: DATABASE_URL, with the secrets
            env["DJANGO_DB_PATH"] = f"{self.data_dir}/db.sqlite3"
        env.update(self.app_env)
        return env


def fail(lines: list[str]) -> None:
    """Print each problem on one line and stop the whole run, before any host changed.

    os._exit: pyinfra prepares hosts in greenlets, where SystemExit ends in a traceback.
    """
    for line in dict.fromkeys(lines):  # once each, in order
        print(f"error: {line}", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


# id(state) -> {host name: (AppSettings, secrets)}: what preflight checked, for the run
_prepared: dict[int, dict[str, tuple]] = {}
_preflight_lock = threading.Lock()  # gevent's, under pyinfra: hosts prepare in greenlets


def preflight(state) -> None:
    """Once per run: every host answered SSH and every host's data is valid.

    pyinfra would go on with the hosts it reached; a fleet half on the new version is
    worse than a deploy that waits until every host answers. All problems are listed.
    Every host's deploy file calls it, each in its own greenlet: the first does the
    checks, the others wait for it (reading a secrets file asks git, which yields), so
    no host goes on with data not yet checked.
    """
    with _preflight_lock:
        if id(state) not in _prepared:
            _prepared[id(state)] = _checked(state)


def checked(state) -> dict:
    """{host name: (settings, secrets)} of every host, as this run's preflight checked them."""
    return _prepared.get(id(state), {})


def _checked(state) -> dict:
    """preflight's checks: {host name: (settings, secrets)}, or the run stops."""
    prepared = {}
    problems = [f"cannot reach {h.name} over SSH (reason above): check its address, port, user "
                "and key, or remove it from the inventory; no host was changed"
                for h in sorted(state.failed_hosts, key=lambda h: h.name)]
    batches, ports, parsed = {}, {}, {}
    for other in state.inventory:
        if other not in state.failed_hosts:
            try:
                parsed[other.name] = (other, parse(other.name, other.data, other.groups))
            except DataError as error:
                problems += error.problems
    problems += link_databases(parsed)
    for other, settings in parsed.values():
        if settings.database_server:
            prepared[other.name] = (settings, None)
            continue
        try:
            batches.setdefault(settings.batch, other.name)
            machine = other.data.get("ssh_hostname") or other.name
            taken = ports.setdefault((machine, settings.port), (settings.project, other.name))
            if taken[0] != settings.project:
                problems.append(f"host {other.name}: port = {settings.port}: {taken[0]} already listens "
                                f"there on the same machine ({taken[1]}): give one of them another port")
            secrets = host_secrets(other, settings)
            problems += check_templates(other, settings, secrets)
            prepared[other.name] = (settings, secrets)
        except DataError as error:
            problems += error.problems
    problems += check_database_passwords(prepared)
    if len(batches) > 1:  # one switch operation, one batch size (pyinfra's _parallel)
        problems.append(f"batch differs between hosts ({', '.join(f'{b} for {h}' for b, h in batches.items())}): "
                        "set it once, in group_data/all.py or with --data batch=...")
    if problems:
        fail(problems)
    return prepared


def link_databases(parsed: dict) -> list[str]:
    """Point each app host at its database, in place: `database` unset means PostgreSQL
    when the inventory has a database server (database_server = True), else SQLite."""
    servers = [name for name, (_, s) in parsed.items() if s.database_server]
    problems = []
    if len(servers) > 1:
        problems.append(f"{len(servers)} database servers ({', '.join(servers)}): one host may set "
                        "database_server = True (the db group); the others use it")
    for name, (host, s) in list(parsed.items()):
        if s.database_server:
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


DB_SECRET = re.compile(r"^[\x21-\x7e]{16,}$")


def check_database_passwords(prepared: dict) -> list[str]:
    """Every app host of a project on PostgreSQL has the same, usable DATABASE_PASSWORD."""
    problems, seen = [], {}
    for name, (s, _) in prepared.items():
        if s.database != "postgresql":
            continue
        password = database_password(name)
        if password is None:
            continue
        if not DB_SECRET.match(password):
            problems.append(f"host {name}: secret {DB_PASSWORD} must be 16 or more printable ASCII characters, "
                            "no spaces: e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'")
        first = seen.setdefault((s.db_host, s.db_name), (name, password))
        if first[1] != password:
            problems.append(f"host {name}: secret {DB_PASSWORD} differs from host {first[0]}'s, for the same "
                            f"database {s.db_name}: give every host of the project the same one")
    return problems


_passwords: dict[str, str] = {}  # host name -> its DATABASE_PASSWORD, for the database server's role


def database_password(host_name: str) -> str | None:
    return _passwords.get(host_name)


TEMPLATES = Path("templates")


def check_templates(host, s: AppSettings, secrets) -> list[str]:
    """Render every template in templates/ for this host now, so a broken one stops the run
    before any host changed (pyinfra would render each only when its operation runs)."""
    import jinja2
    from pyinfra.api.util import get_template

    from djdeploy.operations import render_env  # operations import pyinfra's API; settings stays light

    problems = []
    for path in sorted(TEMPLATES.glob("*.j2")):
        try:
            if path.name == "env.j2":
                render_env(str(path), s, secrets)
            else:  # compiled once per run, in pyinfra's cache, which files.template then uses
                source = os.path.join(host.state.cwd, str(path)) if host.state.cwd else str(path)
                get_template(source).render(s=s, py=repr, host=host, state=host.state, inventory=host.state.inventory)
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
    """This host's settings, as `preflight` checked them (parsed here if it did not run)."""
    if host.name in _prepared.get(id(host.state), {}):
        return _prepared[id(host.state)][host.name][0]
    try:
        return parse(host.name, host.data, host.groups)
    except DataError as error:
        fail(error.problems)


def host_python(host) -> tuple:
    """The host's python3 as (version, machine), or the run stops with one line."""
    from djdeploy.facts import HostPython

    found = host.get_fact(HostPython)
    if found is None:
        fail([f"host {host.name}: has no python3 (every Debian server image has it): "
              "install it there (apt-get install python3), then deploy again; no host was changed"])
    return found


def host_secrets(host, s: AppSettings):
    """This host's secrets (see djdeploy.envfile), checked against its settings."""
    from djdeploy import envfile  # envfile builds on this module

    checked = _prepared.get(id(host.state), {}).get(host.name)
    if checked and checked[0] is s:
        return checked[1]

    taken = {**s.environment, "DATABASE_URL": ""} if s.database == "postgresql" else s.environment
    secrets = envfile.load(host.name, host.groups, s.required_secrets, taken=taken)
    if s.database == "postgresql":  # the app gets the URL; the password alone stays out of .env
        from urllib.parse import quote

        password = _passwords[host.name] = secrets.pop(DB_PASSWORD)
        address = f"[{s.db_address}]" if ":" in s.db_address else s.db_address
        secrets["DATABASE_URL"] = (f"postgres://{s.db_name}:{quote(password, safe='')}@{address}:"
                                   f"{DB_PORT}/{s.db_name}")
    return secrets


FOREIGN = ("ssh_", "_", "fake_", "winrm_", "docker_", "podman_", "chroot_", "vagrant_", "terraform_", "local_")
HINTS = {
    "project": "use letters, digits, '_', '.', '-' (it names /srv/<project> and <project>.service)",
    "port": "a whole number from 1 to 65535, e.g. port = 8000",
    "workers": "a whole number from 1 to 64",
    "listen": 'use "socket" (zero-downtime) or "ambient" (the seed\'s AmbientCapabilities unit)',
    "keep_releases": "a whole number from 2 to 100",
    "health_timeout": "seconds, a whole number from 1 to 300",
    "health_retries": "a whole number from 1 to 600",
    "lock_wait": "seconds, a whole number from 0 to 3600",
    "check_level": "one of " + ", ".join(CHECK_LEVELS),
    "health_path": "a plain path such as /healthz",
    "wsgi_module": "a dotted module path, optionally :name (project.wsgi, shop.serve:app)",
    "settings_module": "a dotted module path (project.settings)",
    "release": "a release id: 12 hex digits, see status.py",
    "requirements": "a path to a pip requirements file, e.g. requirements = \"app/requirements.txt\"",
    "debian_packages": 'a list of Debian package names, e.g. ["gettext", "libmagic1"]',
    "release_commands": 'a list of manage.py commands on one line each, e.g. ["compress --force"]',
    "keep_app_settings": "a list of setting names from: " + ", ".join(OVERRIDES),
    "batch": "a count of hosts (2) or a share (\"25%\")",
    "srv": "an absolute folder under /srv (or set allow_outside_srv = True)",
    "database": 'use "sqlite" or "postgresql"',
    "database_server": "True or False",
    "db_address": "an IP address or host name",
    "db_name": "lower-case letters, digits and _ (a SQL name)",
}
DOTTED = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


DATA = {  # the schema of every key a host's data may set (meanings: DEFAULTS above)
    "project": schema.string(SAFE_PROJECT.pattern),
    "app_path": schema.string(),
    "requirements": schema.optional(schema.string()),
    "wsgi_module": schema.optional(schema.string(DOTTED[:-1] + r"(:[A-Za-z_][A-Za-z0-9_]*)?$")),
    "settings_module": schema.optional(schema.string(DOTTED)),
    "keep_app_settings": schema.list_of(schema.one_of(*OVERRIDES)),
    "serve_files": schema.boolean,
    "debian_packages": schema.list_of(schema.string(r"^[a-z0-9][a-z0-9+.-]{1,62}$")),
    "release_commands": schema.list_of(schema.string(r"^[^\x00-\x1f\x7f]+$")),
    "app_env": schema.dict_of(schema.number),
    "app_user": schema.string(),
    "app_group": schema.optional(schema.string()),
    "port": schema.integer(1, 65535),
    "workers": schema.integer(1, 64),
    "allowed_hosts": schema.optional(schema.list_of(schema.string())),
    "description": schema.optional(schema.string()),
    "listen": schema.one_of(*LISTEN_MODES),
    "keep_releases": schema.integer(2, 100),
    "batch": schema.optional(schema.either(schema.integer(1), schema.string(BATCH.pattern))),
    "health_path": schema.optional(schema.string(HEALTH_PATH.pattern)),
    "health_host": schema.optional(schema.string()),
    "health_timeout": schema.integer(1, 300),
    "health_retries": schema.integer(1, 600),
    "check_level": schema.one_of(*CHECK_LEVELS),
    "lock_wait": schema.integer(0, 3600),
    "required_secrets": schema.list_of(schema.string(ENV_KEY.pattern)),
    "srv": schema.string(),
    "allow_outside_srv": schema.boolean,
    "release": schema.optional(schema.string(r"^[0-9a-f]{12}$")),
    "database": schema.optional(schema.one_of(*DATABASES)),
    "database_server": schema.boolean,
    "db_address": schema.optional(schema.string(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")),
    "db_name": schema.optional(schema.string(r"^[a-z_][a-z0-9_]{0,62}$")),
}
assert set(DATA) == set(DEFAULTS)


def named_groups(groups) -> list[str]:
    """The groups a user named (group_data/<group>.py), once each, in order: pyinfra also
    puts hosts in a group named after the inventory file, and in connector groups (@fake)."""
    return [g for g in dict.fromkeys(groups) if not g.endswith("inventory") and not g.startswith("@")]


def _keys(data) -> dict:
    """The data a host has, as a plain dict (pyinfra's HostData or a dict)."""
    return dict(data.dict() if hasattr(data, "dict") else data)


def _problem(where: str, error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    top = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(top, DEFAULTS, n=1, cutoff=0.6)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return (f"{where}: unknown data key {top!r}: {guess}fix or remove it "
                "(the keys are listed in djdeploy/settings.py DEFAULTS)")
    value = error.get("input")
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    message = error["msg"][0].lower() + error["msg"][1:]
    if error["type"] == "string_pattern_mismatch":
        message = "not a valid value"
    hint = HINTS.get(top, "see djdeploy/settings.py DEFAULTS")
    return f"{where}: {key} = {shown}: {message}: {hint}"


def parse(host_name: str, data, groups=()) -> AppSettings:
    """A host's data checked against `Data` and the rules a schema cannot say; every
    problem found is listed (DataError.problems), each on one line."""
    shown = named_groups(groups)
    where = f"host {host_name}" + (f" (group {', '.join(shown)})" if shown else "")
    everything = _keys(data)
    given = {k: v for k, v in everything.items() if not k.startswith(FOREIGN)}
    server = given.get("database_server") is True
    required = () if server else REQUIRED
    problems = [f"{where}: missing required data key {key!r}: set it in group_data/<group>.py "
                f"for the host's group, or pass --data {key}=..." for key in required
                if given.get(key) is None]
    values = {key: given[key] if given.get(key) is not None else default for key, default in DEFAULTS.items()}
    values.update({k: v for k, v in given.items() if k not in DEFAULTS})  # unknown keys: reported
    if isinstance(values.get("check_level"), str):
        values["check_level"] = values["check_level"].upper()
    # Keys missing or wrong stand in with harmless values, so the checks below still run
    # on the rest and every problem is listed in one go.
    stand_in = {"app_user": "stand-in", "port": 65535}
    if server:  # PostgreSQL's own user and port
        values.update(app_user="postgres", port=DB_PORT, app_group=None)
    bad = {key for key in required if given.get(key) is None}
    errors = schema.validate(DATA, {k: (stand_in[k] if k in bad else v) for k, v in values.items()})
    problems += [_problem(where, e) for e in errors]
    bad |= {str(e["loc"][0]) for e in errors}
    d = SimpleNamespace(**{k: stand_in.get(k, DEFAULTS.get(k)) if k in bad else v
                           for k, v in values.items() if k in DEFAULTS})
    group = d.app_group or d.app_user
    for key, name in (("app_user", d.app_user), ("app_group", d.app_group)):
        if name is None or key in bad:
            continue
        if (not SAFE_NAME.match(name) or name == "root") and not server:
            problems.append(f"{where}: {key} = {name!r}: must be a lower-case system name, not root: "
                            "e.g. web (letters, digits, _ and -, up to 31)")
    if "port" not in bad and not server and (d.port == 22 or d.port == everything.get("ssh_port")):
        problems.append(f"{where}: port = {d.port}: the host's SSH port: pick another (80, 8000, ...)")
    found = {}
    if not (Path(d.app_path) / "manage.py").is_file():
        problems.append(f"{where}: app_path = {d.app_path!r}: holds no manage.py: point it at your Django "
                        "project (relative to the directory you run pyinfra from)")
    elif not server:
        found = discover(Path(d.app_path), d.settings_module)
        for key in ("settings_module", "wsgi_module", "requirements"):
            if key != "requirements" and found.get(key) and schema.validate({key: DATA[key]}, {key: found[key]}):
                found[key] = None  # not a module name (a..b): as if not found
            if getattr(d, key) is None and key not in bad and found.get(key) is None:
                problems.append(f"{where}: {key} is not set and could not be found from {d.app_path}/manage.py: "
                                f"set it in group_data ({HINTS[key]})")
    requirements = d.requirements or found.get("requirements")
    if requirements and not Path(requirements).is_file():
        problems.append(f"{where}: requirements file {requirements!r} does not exist: point it at the "
                        "project's requirements (relative to the directory you run pyinfra from)")
    srv = PurePosixPath(d.srv)
    if not srv.is_absolute() or ".." in srv.parts:
        problems.append(f"{where}: srv = {d.srv!r}: not an absolute path: {HINTS['srv']}")
    elif not d.allow_outside_srv and srv != PurePosixPath(SRV) and PurePosixPath(SRV) not in srv.parents:
        problems.append(f"{where}: srv = {d.srv!r}: outside {SRV}: {HINTS['srv']}")
    app_env = {}
    for key, value in d.app_env.items():
        if not ENV_KEY.match(key) or key.endswith("\n"):
            problems.append(f"{where}: app_env key {key!r} is not a valid variable name: letters, digits, _")
            continue
        if key in DEPLOY_VARIABLES:
            problems.append(f"{where}: app_env key {key!r} is a variable the deploy sets: remove it (see the "
                            "README's production settings; keep_app_settings leaves one as the app has it)")
            continue
        try:
            app_env[key] = check_value(f"{where}: app_env", key, str(value))
        except DataError as error:
            problems += error.problems
    release_commands = []
    for command in d.release_commands if "release_commands" not in bad else ():
        try:
            release_commands.append(shlex.join(shlex.split(command)))
        except ValueError as error:
            problems.append(f"{where}: release_commands: {command!r}: {error}: quote it as a shell would")
    if problems:
        raise DataError(problems)
    allowed = d.allowed_hosts or [host_name, "localhost", "127.0.0.1"]
    return AppSettings(
        project=d.project, app_path=Path(d.app_path), requirements=Path(requirements or "requirements.txt"),
        wsgi_module=d.wsgi_module or found.get("wsgi_module") or "",
        settings_module=d.settings_module or found.get("settings_module") or "", app_env=app_env,
        user=d.app_user, group=group, port=d.port, workers=d.workers, allowed_hosts=tuple(allowed),
        description=d.description or f"{d.project} (gunicorn)", listen=d.listen,
        keep_releases=d.keep_releases, batch=None if d.batch is None else str(d.batch),
        health_path=d.health_path or UP_PATH, health_host=d.health_host or allowed[0],
        health_timeout=d.health_timeout, health_retries=d.health_retries, check_level=d.check_level,
        lock_wait=d.lock_wait, release=d.release, required_secrets=tuple(d.required_secrets), srv=d.srv,
        database=d.database or "auto", database_server=server,
        db_name=d.db_name or re.sub(r"[^a-z0-9_]", "_", d.project.lower()).lstrip("0123456789") or "app",
        db_address=d.db_address or (host_name if server else None),
        keep_app_settings=tuple(d.keep_app_settings), release_commands=tuple(release_commands),
        debian_packages=tuple(d.debian_packages), serve_files=d.serve_files,
    )


SETTINGS_DEFAULT = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([A-Za-z_][\w.]*)['"]""")
WSGI_SETTING = re.compile(r"""^WSGI_APPLICATION\s*=\s*['"]([A-Za-z_][\w.]*)['"]""", re.M)


def discover(app_path: Path, settings_module: str | None) -> dict:
    """What a Django project's own files say: the settings module its manage.py sets, the
    WSGI application its settings name (else <package>.wsgi), its requirements.txt."""
    found = {}
    match = SETTINGS_DEFAULT.search((app_path / "manage.py").read_text(errors="replace"))
    settings_module = settings_module or (match.group(1) if match else None)
    found["settings_module"] = settings_module
    for top in (app_path, app_path / "src") if settings_module else ():  # src/: a packaged project
        base = top.joinpath(*settings_module.split("."))
        source = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
        wsgi = WSGI_SETTING.search(source.read_text(errors="replace")) if source else None
        if wsgi and "." in wsgi.group(1):
            module, _, name = wsgi.group(1).rpartition(".")
            found["wsgi_module"] = module if name == "application" else f"{module}:{name}"
        elif (top / settings_module.split(".")[0] / "wsgi.py").is_file():
            found["wsgi_module"] = settings_module.split(".")[0] + ".wsgi"
        if "wsgi_module" in found:
            break
    if (app_path / "requirements.txt").is_file():
        found["requirements"] = str(app_path / "requirements.txt")
    return found


def rollback_target(host, s: AppSettings) -> str:
    """The release rollback.py goes to on this host: --data release, else `previous`.

    Checked on every host before anything changes: a host without it stops the run.
    """
    from djdeploy.operations import deployment  # operations import pyinfra's API; settings stays light

    state = deployment(s)
    target = s.release or state["previous"]
    if target is None:
        fail([f"host {host.name}: no previous release to roll back to (releases: "
              f"{', '.join(state['releases']) or 'none'}): deploy first, or name one with --data release=<id>"])
    if target not in state["releases"]:
        fail([f"host {host.name}: release {target} is not on this host (releases: "
              f"{', '.join(state['releases']) or 'none'}): name one of them with --data release=<id>"])
    return target
