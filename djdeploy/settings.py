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
}
REQUIRED = ("app_user", "port")
SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
SAFE_PROJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Plain values only until .env quoting is done for both systemd and bash.
ENV_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+,=-]*$")
SRV = "/srv"


class DataError(Exception):
    """A mistake in group data, host data or --data: one line for the user."""


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

    @property
    def root(self) -> str:
        return f"{SRV}/{self.project}"

    @property
    def code_dir(self) -> str:
        return f"{self.root}/src"

    @property
    def venv(self) -> str:
        return f"{self.root}/venv"

    @property
    def wheels_dir(self) -> str:
        return f"{self.root}/wheels"

    @property
    def data_dir(self) -> str:
        return f"{self.root}/data"

    @property
    def env_file(self) -> str:
        return f"{self.root}/.env"

    @property
    def secret_key_file(self) -> str:
        return f"{self.root}/secret_key"

    @property
    def gunicorn_config(self) -> str:
        return f"{self.root}/gunicorn.conf.py"

    @property
    def unit(self) -> str:
        return f"{self.project}.service"

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}"

    @property
    def environment(self) -> dict:
        """Everything .env holds, in order."""
        env = {
            "VIRTUAL_ENV": self.venv,
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
    for line in lines:
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
    for other in state.inventory:
        if other not in state.failed_hosts:
            try:
                parse(other.name, other.data, other.groups)
            except DataError as error:
                problems.append(str(error))
    if problems:
        fail(problems)


def app_settings(host) -> AppSettings:
    """This host's settings, from data that `preflight` checked."""
    try:
        return parse(host.name, host.data, host.groups)
    except DataError as error:
        fail([str(error)])


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
        if not ENV_VALUE.match(str(value)):
            raise DataError(f"{where}: app_env {key} has characters .env cannot hold yet "
                            "(allowed: letters, digits and _./:@%+,=-)")

    allowed = _value(data, "allowed_hosts") or [host_name, "localhost", "127.0.0.1"]
    description = _value(data, "description") or f"{project} (gunicorn)"
    return AppSettings(
        project=project, app_path=app_path, requirements=requirements,
        wsgi_module=str(_value(data, "wsgi_module")),
        settings_module=str(_value(data, "settings_module")),
        app_env={str(k): str(v) for k, v in app_env.items()}, user=user, group=group,
        port=port, workers=workers, allowed_hosts=tuple(allowed), description=description,
    )
