"""What a Django project's own files say about it: its settings module, its WSGI
application and its requirements file, so that data need not repeat them."""

from __future__ import annotations

import re
from pathlib import Path

from djdeploy.config.keys import DJANGO_WSGI

SETTINGS_DEFAULT = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([A-Za-z_][\w.]*)['"]""")
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(\S.*?)\s*$")
WSGI_SETTING = re.compile(r"""^WSGI_APPLICATION\s*=\s*['"]([A-Za-z_][\w.]*)['"]""", re.M)


def discover(app_path: Path, settings_module: str | None) -> dict:
    """What a Django project's own files say: the settings module its manage.py sets, the
    WSGI application its settings name (else <package>.wsgi, else Django's own handler),
    its requirements.txt."""
    found = {}
    match = SETTINGS_DEFAULT.search((app_path / "manage.py").read_text(errors="replace"))
    settings_module = settings_module or (match.group(1) if match else None)
    found["settings_module"] = settings_module
    package = own_package(app_path, settings_module)
    if package:
        found["app_package"] = package
    for top in (app_path, app_path / "src") if settings_module else ():  # src/: a packaged project
        parts = settings_module.split(".")[1:] if package else settings_module.split(".")
        base = top.joinpath(*parts)
        source = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
        wsgi = WSGI_SETTING.search(source.read_text(errors="replace")) if source else None
        if wsgi and "." in wsgi.group(1):
            module, _, name = wsgi.group(1).rpartition(".")
            found["wsgi_module"] = module if name == "application" else f"{module}:{name}"
        elif (top / settings_module.split(".")[0] / "wsgi.py").is_file():
            found["wsgi_module"] = settings_module.split(".")[0] + ".wsgi"
        if "wsgi_module" in found:
            break
    if settings_module and "wsgi_module" not in found:  # none of its own: as runserver serves it
        found["wsgi_module"] = DJANGO_WSGI
    if (app_path / "requirements.txt").is_file():
        found["requirements"] = str(app_path / "requirements.txt")
    if (app_path / "Procfile").is_file():
        found["procfile"] = procfile(app_path / "Procfile")
    return found


def own_package(app_path: Path, settings_module: str | None) -> str | None:
    """The package name a project imports its own folder as, when its manage.py sits inside
    the package it names (settings `example.project.settings` with project/settings.py beside
    manage.py, and no example/ folder): it puts the folder above on sys.path. The release is
    imported under that name on the hosts."""
    if not settings_module or "." not in settings_module:
        return None
    first, _, rest = settings_module.partition(".")
    if (app_path / first).exists() or (app_path / "src" / first).exists():
        return None
    base = app_path.joinpath(*rest.split("."))
    return first if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file() else None


def procfile(path: Path) -> dict:
    """A Procfile's process types, {name: command}, as Heroku and honcho read it: one
    `name: command` per line; blank lines and # comments skipped."""
    types = {}
    for line in path.read_text(errors="replace").splitlines():
        match = PROCFILE_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            types[match.group(1)] = match.group(2)
    return types
