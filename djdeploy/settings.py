"""The deploy's data: every default in one place, and the checked settings of a host.

group_data/*.py and `--data` override DEFAULTS; `app_settings(host)` turns a host's
data into an `AppSettings`, or stops the run with one line saying what is wrong.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {
    "project": "my_awesome_project",  # /srv/<project>, <project>.service
    "app_path": "app",  # the Django project to deploy (the folder holding manage.py)
    "requirements": "app/requirements.txt",  # its locked requirements
    "wsgi_module": "project.wsgi",  # what gunicorn serves
    "settings_module": "project.settings",  # DJANGO_SETTINGS_MODULE
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
    "health_path": "/healthz",  # GET after each restart; 200 or the switch is reverted
    "health_host": None,  # Host header of that GET; defaults to the first allowed host
    "health_timeout": 5,  # seconds per attempt
    "health_retries": 15,  # attempts, a second apart
    "check_level": "ERROR",  # manage.py check --deploy --fail-level before a release serves
    "lock_wait": 30,  # seconds a deploy waits for another one's lock on a host
    "required_secrets": [],  # names the app needs from secrets/<group>.toml or DJDEPLOY_SECRET_<NAME>
    "release": None,  # rollback.py: the release to go back to (default: the previous one)
}
REQUIRED = ("app_user", "port")
SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
SAFE_PROJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Plain values only until .env quoting is done for both systemd and bash.
ENV_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+,=-]*$")
LISTEN_MODES = ("socket", "ambient")
CHECK_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
BATCH = re.compile(r"^([1-9][0-9]*)(%?)$")
SRV = "/srv"


class DataError(Exception):
    """A mistake in group data, host data or --data: one line for the user."""


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

    @property
    def root(self) -> str:
        return f"{SRV}/{self.project}"

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
                self.unit_file, self.socket_file)

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
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "DJANGO_SECRET_KEY_FILE": self.secret_key_file,
            "DJANGO_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "DJANGO_DB_PATH": f"{self.data_dir}/db.sqlite3",
            "PORT": str(self.port),
        }
        env.update(self.app_env)
        return env


def _value(data, key):
    value = data.get(key, None)
    return DEFAULTS[key] if value is None else value


def fail(lines: list[str]) -> None:
    """Print each problem on one line and stop the whole run, before any host changed.

    os._exit: pyinfra prepares hosts in greenlets, where SystemExit ends in a traceback.
    """
    for line in dict.fromkeys(lines):  # once each, in order
        print(f"error: {line}", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


_checked: set[int] = set()


def preflight(state) -> None:
    """Once per run: every host answered SSH and every host's data is valid.

    pyinfra would go on with the hosts it reached; a fleet half on the new version is
    worse than a deploy that waits until every host answers. All problems are listed.
    """
    if id(state) in _checked:
        return
    _checked.add(id(state))
    problems = [f"cannot reach {h.name} over SSH (reason above): check its address, port, user "
                "and key, or remove it from the inventory; no host was changed"
                for h in sorted(state.failed_hosts, key=lambda h: h.name)]
    batches = {}
    for other in state.inventory:
        if other not in state.failed_hosts:
            try:
                settings = parse(other.name, other.data, other.groups)
                batches.setdefault(settings.batch, other.name)
                host_secrets(other, settings)
            except DataError as error:
                problems.append(str(error))
    if len(batches) > 1:  # one switch operation, one batch size (pyinfra's _parallel)
        problems.append(f"batch differs between hosts ({', '.join(f'{b} for {h}' for b, h in batches.items())}): "
                        "set it once, in group_data/all.py or with --data batch=...")
    if problems:
        fail(problems)


def app_settings(host) -> AppSettings:
    """This host's settings, from data that `preflight` checked."""
    try:
        return parse(host.name, host.data, host.groups)
    except DataError as error:
        fail([str(error)])


def host_secrets(host, s: AppSettings):
    """This host's secrets (see djdeploy.envfile), checked against its settings."""
    from djdeploy import envfile  # envfile builds on this module

    return envfile.load(host.name, host.groups, s.required_secrets, taken=s.environment)


def parse(host_name: str, data, groups=()) -> AppSettings:
    shown = [g for g in groups if g != "inventory"]  # pyinfra's group for the file itself
    where = f"host {host_name}" + (f" (group {', '.join(shown)})" if shown else "")
    for key in REQUIRED:
        if data.get(key, None) is None:
            raise DataError(f"{where}: missing required data key {key!r}: set it in "
                            f"group_data/<group>.py for the host's group, or pass --data {key}=...")

    project = str(_value(data, "project"))
    if not SAFE_PROJECT.match(project):
        raise DataError(f"{where}: project {project!r} is not a safe directory and unit name: "
                        "use letters, digits, '_', '.', '-'")
    user = str(_value(data, "app_user"))
    group = str(_value(data, "app_group") or user)
    for key, name in (("app_user", user), ("app_group", group)):
        if not SAFE_NAME.match(name) or name == "root":
            raise DataError(f"{where}: {key} {name!r} must be a lower-case system name, not root")
    port = _value(data, "port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise DataError(f"{where}: port {port!r} must be a whole number from 1 to 65535")
    workers = _value(data, "workers")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise DataError(f"{where}: workers {workers!r} must be a whole number from 1 to 64")

    app_path = Path(str(_value(data, "app_path")))
    if not (app_path / "manage.py").is_file():
        raise DataError(f"{where}: app_path {str(app_path)!r} holds no manage.py: point it at "
                        "your Django project (relative to the directory you run pyinfra from)")
    requirements = Path(str(_value(data, "requirements")))
    if not requirements.is_file():
        raise DataError(f"{where}: requirements file {str(requirements)!r} does not exist")

    app_env = _value(data, "app_env")
    if not isinstance(app_env, dict):
        raise DataError(f"{where}: app_env must be a dict of NAME: value, not {type(app_env).__name__}")
    for key, value in app_env.items():
        if not ENV_KEY.match(str(key)):
            raise DataError(f"{where}: app_env key {key!r} is not a valid variable name")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        check_value(f"{where}: app_env", str(key), value)

    allowed = _value(data, "allowed_hosts") or [host_name, "localhost", "127.0.0.1"]
    description = _value(data, "description") or f"{project} (gunicorn)"
    listen = _value(data, "listen")
    if listen not in LISTEN_MODES:
        raise DataError(f"{where}: listen {listen!r} must be one of {', '.join(LISTEN_MODES)}")
    numbers = {}
    for key, low, high in (("keep_releases", 2, 100), ("health_timeout", 1, 300),
                           ("health_retries", 1, 600), ("lock_wait", 0, 3600)):
        value = _value(data, key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DataError(f"{where}: {key} {value!r} must be a whole number from {low} to {high}")
        numbers[key] = value
    batch = _value(data, "batch")
    if batch is not None and not BATCH.match(str(batch)):
        raise DataError(f"{where}: batch {batch!r} must be a count of hosts (2) or a share (25%)")
    health_path = str(_value(data, "health_path"))
    if not health_path.startswith("/") or not ENV_VALUE.match(health_path):
        raise DataError(f"{where}: health_path {health_path!r} must be a plain path such as /healthz")
    check_level = str(_value(data, "check_level")).upper()
    if check_level not in CHECK_LEVELS:
        raise DataError(f"{where}: check_level {check_level!r} must be one of {', '.join(CHECK_LEVELS)}")
    required_secrets = _value(data, "required_secrets")
    if not isinstance(required_secrets, (list, tuple)) or not all(
            isinstance(k, str) and ENV_KEY.match(k) for k in required_secrets):
        raise DataError(f"{where}: required_secrets must be a list of variable names, "
                        f"not {required_secrets!r}")
    release = _value(data, "release")
    if release is not None and not re.fullmatch(r"[0-9a-f]{12}", str(release)):
        raise DataError(f"{where}: release {release!r} is not a release id (12 hex digits, "
                        "see status.py)")
    return AppSettings(
        project=project, app_path=app_path, requirements=requirements,
        wsgi_module=str(_value(data, "wsgi_module")),
        settings_module=str(_value(data, "settings_module")),
        app_env={str(k): str(v) for k, v in app_env.items()}, user=user, group=group,
        port=port, workers=workers, allowed_hosts=tuple(allowed), description=description,
        listen=listen, batch=None if batch is None else str(batch), health_path=health_path,
        health_host=str(_value(data, "health_host") or allowed[0]), check_level=check_level,
        release=None if release is None else str(release), required_secrets=tuple(required_secrets),
        **numbers,
    )


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
