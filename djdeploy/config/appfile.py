"""What the app says it needs, in a file that travels with it: `djdeploy.toml` beside its
manage.py, or a `[tool.djdeploy]` table in its pyproject.toml (as a Procfile travels
with an app on a PaaS). It holds only the app's keys (APP_KEYS: its requirements, health
path, release commands, process types, timers, Debian packages, extra variables); what
the fleet decides (users, ports, domains, batches) stays in group_data.

Data from group_data, servers.toml and --data wins over the app file, so a third-party
app you do not edit is deployed by data alone.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from djdeploy.config.keys import APP_FILE, APP_KEYS, DEFAULTS
from djdeploy.errors import DataError


def read(app_path: Path) -> tuple[str | None, dict]:
    """(where the values came from, {key: value}) of the app in `app_path`; (None, {}) when it
    has no app file. Paths (requirements) are made relative to where pyinfra runs. A file
    that does not parse, or names a key that is not the app's, is a DataError (one line)."""
    own, project = app_path / APP_FILE, app_path / "pyproject.toml"
    try:
        own_file, project_file = own.is_file(), project.is_file()
    except OSError:  # not a path this machine takes: app_path's own check says so
        return None, {}
    if own_file:
        where, table = str(own), _load(own)
    elif project_file:
        where, table = f"{project} [tool.djdeploy]", _load(project).get("tool", {}).get("djdeploy")
        if table is None:
            return None, {}
        if not isinstance(table, dict):
            raise DataError(f"{where}: not a table: write [tool.djdeploy] with key = value lines")
    else:
        return None, {}
    problems = []
    for key in table:
        if key in APP_KEYS:
            continue
        if key in DEFAULTS:
            problems.append(f"{where}: {key} is decided by the fleet, not the app: set it in "
                            f"group_data/<group>.py (the app file takes {', '.join(APP_KEYS)})")
        else:
            problems.append(f"{where}: unknown key {key!r}: the app file takes {', '.join(APP_KEYS)}")
    if problems:
        raise DataError(problems)
    values = dict(table)
    if isinstance(values.get("requirements"), str):  # written relative to the app
        values["requirements"] = str(app_path / values["requirements"])
    return where, values


def _load(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(errors="replace"))
    except tomllib.TOMLDecodeError as error:
        raise DataError(f"{path}: {error}: fix it (TOML, key = value lines)") from None
