"""A host's checked settings: `parse` turns its data into an `AppSettings`
(djdeploy.config.appsettings), every path derived, or a DataError listing each problem on one line. The keys, their defaults and
checks are in djdeploy.config.keys.
"""

from __future__ import annotations

import difflib
import re
import shlex
import sys
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

from djdeploy.config import appfile, schema
from djdeploy.config.appsettings import AppSettings, Backups, Process, Timer
from djdeploy.config.discover import discover
from djdeploy.config.keys import (DATA, DATA_STRING_MAX, DB_PORT, DEFAULTS, DEPLOY_VARIABLES, ENV_KEY, FOREIGN, HINTS,
                                  PROCESS_NAME, REMOVED, REQUIRED, SAFE_NAME, SRV, TIMER_NAME, UP_PATH, check_value,
                                  control_character, named_groups)
from djdeploy.config.requirements import requirements_problems
from djdeploy.errors import DataError


# Ids given on the command line: pyinfra reads `--data backup=01234567` as the int
# 1234567 and `--data release=1234e5678901` as a float, so they are taken as written.
ID_KEYS = ("backup", "release")


def as_written(key: str, value, argv=None):
    """`value` as the operator typed it after `--data key=`, when pyinfra made a number of it."""
    if type(value) not in (int, float):
        return value
    argv = sys.argv if argv is None else argv
    given = [arg.split("=", 1)[1] for before, arg in zip(argv, argv[1:])
             if before == "--data" and arg.startswith(f"{key}=")]
    given += [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--data={key}=")]
    return given[-1] if given else value


def _keys(data) -> dict:
    """The data a host has, as a plain dict (pyinfra's HostData or a dict)."""
    keys = dict(data.dict() if hasattr(data, "dict") else data)
    return {k: as_written(k, v) if k in ID_KEYS else v for k, v in keys.items()}


def _problem(where: str, error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    top = str(error["loc"][0])
    if error["type"] in ("extra_forbidden", "missing") and len(error["loc"]) > 1:  # a field of a record
        return f"{where}: {key}: {error['msg'].lower()}: {HINTS.get(top, 'see docs/configuration.md')}"
    if error["type"] == "extra_forbidden" and top in REMOVED:
        return f"{where}: {top}: no longer a data key: {REMOVED[top]}"
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(top, DEFAULTS, n=1, cutoff=0.6)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return (f"{where}: unknown data key {top!r}: {guess}fix or remove it "
                "(the keys are listed in docs/configuration.md)")
    value = error.get("input")
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    message = error["msg"][0].lower() + error["msg"][1:]
    if error["type"] == "string_pattern_mismatch":
        message = "not a valid value"
    hint = HINTS.get(top, "see docs/configuration.md")
    return f"{where}: {key} = {shown}: {message}: {hint}"


def _hostile_strings(where: str, given: dict) -> dict[str, list[str]]:
    """Every string in data (in lists too) is one line of printable text, of a sane size: a
    line break in a value would add lines to the unit, the run script or .env it reaches.
    (app_env's values are checked as .env values, by check_value.) {key: its problems}."""
    problems: dict[str, list[str]] = {}

    def walk(top: str, key: str, value) -> None:
        if isinstance(value, str):
            control = control_character(value)
            if control:
                problems.setdefault(top, []).append(f"{where}: {key} holds {control}: "
                                                    "data values are one line of text: remove it")
            elif len(value) > DATA_STRING_MAX:
                problems.setdefault(top, []).append(f"{where}: {key} is {len(value):,} characters, more than "
                                                    f"{DATA_STRING_MAX:,}: shorten it")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(top, f"{key}.{index}", item)

    for key, value in given.items():
        walk(key, key, value)
    return problems


def parse(host_name: str, data, groups=()) -> AppSettings:
    """A host's data checked against `Data` and the rules a schema cannot say; every
    problem found is listed (DataError.problems), each on one line."""
    shown = named_groups(groups)
    where = f"host {host_name}" + (f" (group {', '.join(shown)})" if shown else "")
    everything = _keys(data)
    given = {k: v for k, v in everything.items() if not k.startswith(FOREIGN)}
    db_server = given.get("database_server") is True
    server = db_server or any(given.get(k) is True for k in ("balancer", "files_server", "backup_server"))  # no app
    required = () if server else REQUIRED
    problems = [f"{where}: missing required data key {key!r}: set it in group_data/<group>.py "
                f"for the host's group, or pass --data {key}=..." for key in required
                if given.get(key) is None]
    # The app's own file (djdeploy.toml beside manage.py): under data, over the defaults.
    app_where, app_values = None, {}
    app_path = given.get("app_path") or DEFAULTS["app_path"]
    if not server and isinstance(app_path, str) and not control_character(app_path):
        try:
            app_where, app_values = appfile.read(Path(app_path))
        except DataError as error:
            problems += error.problems
    from_app = {k for k, v in app_values.items() if given.get(k) is None and v is not None}
    merged = {**{k: app_values[k] for k in from_app}, **given}
    merged["processes"] = _process_layers(app_values.get("processes"), given.get("processes"))
    hostile = _hostile_strings(where, {k: v for k, v in merged.items() if k in DEFAULTS and k != "app_env"})
    problems += [problem for found in hostile.values() for problem in found]
    values = {key: merged[key] if merged.get(key) is not None else default for key, default in DEFAULTS.items()}
    values.update({k: v for k, v in given.items() if k not in DEFAULTS})  # unknown keys: reported
    if isinstance(values.get("check_level"), str):
        values["check_level"] = values["check_level"].upper()
    # Keys missing or wrong stand in with harmless values, so the checks below still run
    # on the rest and every problem is listed in one go.
    stand_in = {"app_user": "stand-in", "port": 65535}
    if db_server:  # PostgreSQL's own user and port
        values.update(app_user="postgres", port=DB_PORT, app_group=None)
    elif server:  # HAProxy's or the uploads' account: the deploy names it
        values.update(app_user="nobody", app_group=None)
        if given.get("backup_server") is True:  # nothing served: no port of its own
            values.update(port=values.get("port") or stand_in["port"])
    bad = {key for key in required if given.get(key) is None} | set(hostile)
    errors = schema.validate(DATA, {k: (stand_in.get(k, DEFAULTS.get(k)) if k in bad else v) for k, v in values.items()})
    problems += [_problem(app_where if str(e["loc"][0]) in from_app else where, e) for e in errors]
    bad |= {str(e["loc"][0]) for e in errors}
    # Every key's value: given, else its default (a stand-in where the given one is wrong).
    chosen = SimpleNamespace(**{k: stand_in.get(k, DEFAULTS.get(k)) if k in bad else v
                           for k, v in values.items() if k in DEFAULTS})
    group = chosen.app_group or chosen.app_user
    for key, name in (("app_user", chosen.app_user), ("app_group", chosen.app_group)):
        if name is None or key in bad:
            continue
        if (not SAFE_NAME.match(name) or name == "root") and not server:
            problems.append(f"{where}: {key} = {name!r}: must be a lower-case system name, not root: "
                            "e.g. web (letters, digits, _ and -, up to 31)")
    if "port" not in bad and not db_server and (chosen.port == 22 or chosen.port == everything.get("ssh_port")):
        problems.append(f"{where}: port = {chosen.port}: the host's SSH port: pick another (80, 8000, ...)")
    found = {}
    if not (Path(chosen.app_path) / "manage.py").is_file():
        problems.append(f"{where}: app_path = {chosen.app_path!r}: holds no manage.py: point it at your Django "
                        "project (relative to the directory you run pyinfra from)")
    elif not server:
        found = discover(Path(chosen.app_path), chosen.settings_module)
        for key in ("settings_module", "wsgi_module", "requirements"):
            if key != "requirements" and found.get(key) and schema.validate({key: DATA[key]}, {key: found[key]}):
                found[key] = None  # not a module name (a..b): as if not found
            if getattr(chosen, key) is None and key not in bad and found.get(key) is None:
                problems.append(f"{where}: {key} is not set and could not be found from {chosen.app_path}/manage.py: "
                                f"set it in group_data ({HINTS[key]})")
    requirements = chosen.requirements or found.get("requirements")
    if requirements and not Path(requirements).is_file():
        problems.append(f"{where}: requirements file {requirements!r} does not exist: point it at the "
                        "project's requirements (relative to the directory you run pyinfra from)")
    elif requirements and "package_indexes" not in bad:
        problems += requirements_problems(Path(requirements), chosen.package_indexes, where)
    srv = PurePosixPath(chosen.srv)
    if not srv.is_absolute() or ".." in srv.parts:
        problems.append(f"{where}: srv = {chosen.srv!r}: not an absolute path: {HINTS['srv']}")
    elif not chosen.allow_outside_srv and srv != PurePosixPath(SRV) and PurePosixPath(SRV) not in srv.parents:
        problems.append(f"{where}: srv = {chosen.srv!r}: outside {SRV}: {HINTS['srv']}")
    app_env = {}
    for key, value in chosen.app_env.items():
        if not ENV_KEY.match(key) or key.endswith("\n"):
            problems.append(f"{where}: app_env key {key!r} is not a valid variable name: letters, digits, _")
            continue
        if key in DEPLOY_VARIABLES:
            problems.append(f"{where}: app_env key {key!r} is a variable the deploy sets: remove it (see the "
                            "docs/production-settings.md; keep_app_settings leaves one as the app has it)")
            continue
        try:
            app_env[key] = check_value(f"{where}: app_env", key, str(value))
        except DataError as error:
            problems += error.problems
    release_commands = []
    for command in chosen.release_commands if "release_commands" not in bad else ():
        try:
            release_commands.append(shlex.join(shlex.split(command)))
        except ValueError as error:
            problems.append(f"{where}: release_commands: {command!r}: {error}: quote it as a shell would")
    timers = []
    for name, fields in sorted(chosen.timers.items()) if "timers" not in bad else ():
        if not TIMER_NAME.match(name):
            problems.append(f"{where}: timers: {name!r}: not a timer name: {HINTS['timers']}")
            continue
        timers.append(Timer(name=name, **fields))
    processes, found_problems = _processes(where, chosen, found.get("procfile") or {}, bad)
    problems += found_problems
    root = chosen.acme_ca_root
    if root and "acme_ca_root" not in bad and (not Path(root).is_file() or Path(root).is_symlink()):
        problems.append(f"{where}: acme_ca_root = {root!r}: not a file here: the PEM file that signs "
                        "acme_ca's HTTPS, relative to the directory you run pyinfra from")
    elif root and "acme_ca_root" not in bad and "BEGIN CERTIFICATE" not in Path(root).read_text(errors="replace"):
        problems.append(f"{where}: acme_ca_root = {root!r}: holds no PEM certificate: give the CA's root "
                        "certificate (-----BEGIN CERTIFICATE-----)")
    tls, tls_files = "off", ()
    if "tls" not in bad and "domain" not in bad and not db_server:
        tls, tls_files, found_problems = _tls(where, chosen)
        problems += found_problems
    if problems:
        raise DataError(problems)
    allowed = chosen.allowed_hosts or [*([chosen.domain] if chosen.domain else []), host_name, "localhost", "127.0.0.1"]
    return AppSettings(
        project=chosen.project, app_path=Path(chosen.app_path), requirements=Path(requirements or "requirements.txt"),
        wsgi_module=chosen.wsgi_module or found.get("wsgi_module") or "",
        settings_module=chosen.settings_module or found.get("settings_module") or "", app_env=app_env,
        user=chosen.app_user, group=group, port=chosen.port, workers=chosen.workers, allowed_hosts=tuple(allowed),
        description=chosen.description or f"{chosen.project} (gunicorn)", listen=chosen.listen,
        keep_releases=chosen.keep_releases, batch=None if chosen.batch is None else str(chosen.batch),
        health_path=chosen.health_path or UP_PATH, health_host=chosen.health_host or allowed[0],
        health_timeout=chosen.health_timeout, health_retries=chosen.health_retries, check_level=chosen.check_level,
        lock_wait=chosen.lock_wait, release=chosen.release, required_secrets=tuple(chosen.required_secrets), srv=chosen.srv,
        database=chosen.database or "auto", database_server=db_server, balancer=given.get("balancer") is True,
        files_server=given.get("files_server") is True, backup_server=given.get("backup_server") is True,
        backups=Backups(**chosen.backups), migrate_without_backup=chosen.migrate_without_backup,
        rollback_data=chosen.rollback_data, backup=chosen.backup, restore_to=chosen.restore_to,
        balancer_address=chosen.balancer_address,
        db_name=chosen.db_name or re.sub(r"[^a-z0-9_]", "_", chosen.project.lower()).lstrip("0123456789") or "app",
        db_address=chosen.db_address or (host_name if db_server else None),
        keep_app_settings=tuple(chosen.keep_app_settings), release_commands=tuple(release_commands),
        debian_packages=tuple(chosen.debian_packages), serve_files=chosen.serve_files, web=chosen.web, without=tuple(chosen.without),
        secret_key_version=chosen.secret_key_version, timers=tuple(timers),
        domain=chosen.domain, tls=tls, tls_files=tls_files, hsts=chosen.hsts,
        acme_ca=chosen.acme_ca, acme_ca_root=chosen.acme_ca_root, acme_email=chosen.acme_email, acme_renew_interval=chosen.acme_renew_interval,
        static_url=chosen.static_url, processes=tuple(processes), source_builds=tuple(chosen.source_builds),
        package_indexes=tuple(chosen.package_indexes),
        procfile_release=(found.get("procfile") or {}).get("release"),
        app_package=found.get("app_package") or "",
        linked_files=tuple(chosen.linked_files), linked_dirs=tuple(chosen.linked_dirs),
    )


def _process_layers(app, data):
    """The processes key from the app file's (commands, as a Procfile gives them: no instance
    unless a count is given) and data's (counts, per group) together, field by field; a
    type data names runs 1 instance unless it gives a count."""
    if not isinstance(app, dict) or not all(isinstance(f, dict) for f in app.values()):
        return data if data is not None else app  # nothing to layer (or wrong: the check says so)
    layered = {name: {"count": 0, **fields} for name, fields in app.items()}
    if isinstance(data, dict):
        for name, fields in data.items():
            layered[name] = {**layered.get(name, {}), "count": 1, **fields} if isinstance(fields, dict) else fields
    return layered


def _processes(where: str, chosen, procfile: dict, bad) -> tuple[list, list]:
    """(Process list, problems): the Procfile's types (no instance unless data gives a
    count) with the data's processes on top (which may only set a count or a stop)."""
    if "processes" in bad:
        return [], []
    # As Heroku and Dokku scale them: a Procfile's type runs where data names it (beat or
    # clock once per fleet, not once per host).
    types = {name: {"command": command, "count": 0} for name, command in procfile.items()
             if name not in ("web", "release")}
    problems, processes = [], []
    for name, fields in chosen.processes.items():  # named in data: one instance unless it says
        types[name] = {**types.get(name, {}), "count": 1, **fields}
    for name, fields in sorted(types.items()):
        if not PROCESS_NAME.match(name) or name in ("web", "release"):
            problems.append(f"{where}: processes: {name!r}: not a process type name: {HINTS['processes']}")
        elif "command" not in fields:
            problems.append(f"{where}: processes.{name}: no command, and the app's Procfile has no {name} line: "
                            "give it one (command = \"...\")")
        elif control_character(fields["command"]):
            problems.append(f"{where}: processes.{name}.command: {control_character(fields['command'])}: "
                            "one line of printable text")
        else:
            processes.append(Process(name=name, **fields))
    return processes, problems


def _tls(where: str, chosen) -> tuple[str, tuple, list]:
    """(tls mode, (certificate, key) files, problems) from the data's domain and tls keys."""
    problems = []
    if chosen.tls == "off" or (chosen.tls == "auto" and not chosen.domain):
        return "off", (), problems
    if not chosen.domain:
        return "off", (), [f"{where}: tls holds certificate files but domain is not set: set domain = "
                           "\"<the name the certificate is for>\", or tls = \"off\""]
    if chosen.tls == "auto":
        return "acme", (), problems
    files = (chosen.tls["certificate"], chosen.tls["key"])
    for field, path in zip(("certificate", "key"), files):
        if not Path(path).is_file() or Path(path).is_symlink():
            problems.append(f"{where}: tls.{field} = {path!r}: not a file here: the PEM {field} file, "
                            "relative to the directory you run pyinfra from")
    if not problems and "PRIVATE KEY-----" not in Path(files[1]).read_text(errors="replace"):
        problems.append(f"{where}: tls.key = {files[1]!r}: holds no PEM private key")
    if not problems and "BEGIN CERTIFICATE" not in Path(files[0]).read_text(errors="replace"):
        problems.append(f"{where}: tls.certificate = {files[0]!r}: holds no PEM certificate")
    return "files", files, problems
