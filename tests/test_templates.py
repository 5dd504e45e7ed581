"""The templates render to the seed's shapes (no hosts needed)."""

import dataclasses
import re
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from djdeploy.config.settings import parse

ROOT = Path(__file__).resolve().parent.parent


def render(name, s):
    # pyinfra renders templates with Jinja2 and StrictUndefined too.
    env = Environment(loader=FileSystemLoader(ROOT), undefined=StrictUndefined,
                      keep_trailing_newline=True)
    return env.get_template(f"templates/{name}").render(s=s, py=repr)


def lines(text):
    return [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]


def test_run_script_has_the_seeds_shape(settings):
    text = render("run.j2", settings)
    body = lines(text)
    assert text.startswith("#! /bin/bash\n")
    # Load .env with export on, then exec gunicorn from the virtualenv: the seed's order.
    assert body[0] == "set -a"
    assert body[1].startswith("source /srv/my_awesome_project/shared/.env")
    assert body[2] == "set +a"
    assert body[-2].startswith("exec $VIRTUAL_ENV/bin/gunicorn ")
    assert "--bind unix:/srv/my_awesome_project/socket/gunicorn.sock" in body[-2]  # behind the front, its socket only
    # Pinned to the release `current` points at when it starts.
    assert "release=$(readlink -f /srv/my_awesome_project/current)" in body
    assert 'cd "$release"' in body
    # The app's WSGI application through the deploy's entry (health endpoint, static files).
    assert body[-1].split()[-1] == "djdeploy_wsgi"
    assert settings.environment["DJDEPLOY_APP_WSGI"] == "project.wsgi"
    assert "--workers 2" in body[-1]


def sections_of(text):
    sections = {}
    current = None
    for line in lines(text):
        if line.startswith("["):
            current = line
            sections[current] = {}
        else:
            key, _, value = line.partition("=")
            sections[current].setdefault(key, value)
    return sections


@pytest.mark.parametrize("listen", ["ambient", "socket"])
def test_unit_has_the_seeds_directives(settings, listen):
    settings = dataclasses.replace(settings, listen=listen)
    sections = sections_of(render("app.service.j2", settings))
    assert list(sections) == ["[Unit]", "[Service]", "[Install]"]
    assert sections["[Unit]"]["Description"] == "my_awesome_project (gunicorn)"
    assert sections["[Unit]"]["After"] == "network.target"
    service = sections["[Service]"]
    assert service["EnvironmentFile"] == "/srv/my_awesome_project/shared/.env"
    assert service["WorkingDirectory"] == "/srv/my_awesome_project/"
    assert service["ExecStart"] == "/srv/my_awesome_project/run"
    assert service["User"] == service["Group"] == "web"
    assert service["Type"] == "notify"
    assert sections["[Install]"] == {"WantedBy": "multi-user.target"}
    if listen == "ambient":  # the seed's unit: gunicorn binds port 80 itself
        assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
        assert "Requires" not in sections["[Unit]"]
    else:  # the socket holds the port: no capability at all
        assert "AmbientCapabilities" not in service
        assert sections["[Unit]"]["Requires"] == "my_awesome_project.socket"


def test_socket_unit_holds_the_port(settings):
    sections = sections_of(render("app.socket.j2", settings))
    assert sections["[Socket]"] == {"ListenStream": "/srv/my_awesome_project/socket/gunicorn.sock", "SocketMode": "0666",
                                    "Service": "my_awesome_project.service"}
    assert sections["[Install]"] == {"WantedBy": "sockets.target"}


def test_env_file_holds_the_seeds_variables_extras_and_secrets_quoted(settings):
    from djdeploy.config.envfile import Secrets
    from djdeploy.ops.uploads import render_env

    text = render_env(str(ROOT / "templates" / "env.j2"), settings, Secrets(API_TOKEN='a"b$c`d\\e f'))
    pairs = dict(line.split("=", 1) for line in lines(text))
    assert pairs["VIRTUAL_ENV"] == '"/srv/my_awesome_project/current/venv"'
    assert pairs["DJANGO_SETTINGS_MODULE"] == '"djdeploy_settings"'  # the app's own, then production's
    assert pairs["PYTHONPATH"] == '"/srv/my_awesome_project/django"'
    assert "PORT" not in pairs  # gunicorn listens on a unix socket behind the front, not on a port
    assert pairs["DJANGO_ALLOWED_HOSTS"] == '"app1.example.com,localhost,127.0.0.1"'
    assert pairs["SENTRY_ENVIRONMENT"] == '"production"'
    # Secrets last, with the four characters special inside double quotes escaped.
    assert list(pairs)[-1] == "API_TOKEN"
    assert pairs["API_TOKEN"] == '"a\\"b\\$c\\`d\\\\e f"'
    # Django's key lives in its own file, made on the host.
    assert pairs["DJANGO_SECRET_KEY_FILE"] == '"/srv/my_awesome_project/shared/secret_key"'
    assert not any(re.search("SECRET_KEY=", line) for line in lines(text))


def test_secrets_never_show_their_values_when_printed():
    from djdeploy.config.envfile import Secrets

    secrets = Secrets(API_TOKEN="hunter2-value")
    assert "hunter2" not in repr(secrets) + str(secrets) + f"{secrets}" + str([secrets])
    assert "API_TOKEN" in repr(secrets)


def test_the_hosts_env_digests_are_the_controllers(tmp_path):
    """EnvFile's and EnvFileLines' commands (run on a host) and envfile's digests (on the
    controller) are two copies of one computation: they must agree, or every .env looks
    changed."""
    import subprocess

    from djdeploy.config.envfile import line_digests
    from djdeploy.ops.facts import EnvFileLines

    text = '# comment\nA="1"\nSECRET="ünï $x `y` \\\\ \\"q\\""\n\nB=plain=with=equals\n'
    path = tmp_path / ".env"
    path.write_bytes(text.encode())
    out = subprocess.run(["python3", "-I", "-S", "-c", EnvFileLines._SCRIPT, str(path), "salt:x"], capture_output=True,
                         text=True, check=True).stdout
    host_side = EnvFileLines().process(out.splitlines())
    assert host_side == line_digests(text, "salt:x")
    assert [name for name, _ in host_side] == ["#", "A", "SECRET", "#", "B", "#"]
    # And the whole file's digest, as the EnvFile fact's shell computes it (with sh: dash).
    from djdeploy.config.envfile import file_digest
    from djdeploy.ops.facts import EnvFile

    command = EnvFile().command(str(path), "salt:x")
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    assert EnvFile().process(out.splitlines())["digest"] == file_digest(text, "salt:x")


def load_settings(tmp_path, monkeypatch, s, app_settings, environ=None):
    """Render the deploy's settings module for `s`, beside a stand-in app's own settings
    (`app_settings`, the text of shop/settings.py), and import it as Django would."""
    import importlib
    import sys

    release = tmp_path / "releases" / "abc"
    (release / "shop").mkdir(parents=True)
    (release / "shop" / "__init__.py").write_text("")
    (release / "shop" / "settings.py").write_text(app_settings)
    key = tmp_path / "secret_key"
    key.write_text("the-hosts-own-key\n")
    s = dataclasses.replace(s, settings_module="shop.settings", srv=str(tmp_path / "srv"))
    monkeypatch.setattr(type(s), "secret_key_file", property(lambda self: str(key)))
    (tmp_path / "django").mkdir()
    (tmp_path / "django" / "djdeploy_settings.py").write_text(render("settings.py.j2", s))
    for name in ("SECRET_KEY", "DJANGO_SECRET_KEY", "DEBUG", "DJANGO_DEBUG", "DATABASE_URL"):
        monkeypatch.setenv(name, "")  # restored (absent) after the test: the module sets them
        monkeypatch.delenv(name)
    for name, value in (environ or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(release))
    monkeypatch.setenv("DJDEPLOY_RELEASE", str(release))  # as ./run and release.sh set it
    monkeypatch.syspath_prepend(str(tmp_path / "django"))
    for name in ("djdeploy_settings", "shop", "shop.settings"):
        sys.modules.pop(name, None)
    try:
        return s, release, importlib.import_module("djdeploy_settings")
    finally:
        for name in ("djdeploy_settings", "shop", "shop.settings"):
            sys.modules.pop(name, None)


TUTORIAL = """
import os
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-fallback")
DEBUG = True
ALLOWED_HOSTS = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
STATIC_ROOT = BASE_DIR / "staticfiles"
SEEN_URL = os.environ["DATABASE_URL"]
"""


def test_production_settings_go_on_top_of_the_apps_own(settings, tmp_path, monkeypatch):
    s, release, module = load_settings(tmp_path, monkeypatch, settings, TUTORIAL)
    assert module.ALLOWED_HOSTS == ["app1.example.com", "localhost", "127.0.0.1"]
    assert module.DEBUG is False
    assert module.SECRET_KEY == "the-hosts-own-key"  # not the app's fallback
    assert module.DATABASES["default"]["NAME"] == f"{s.data_dir}/db.sqlite3"
    assert module.SEEN_URL == f"sqlite:///{s.data_dir}/db.sqlite3"  # twelve-factor apps read it too
    assert module.STATIC_ROOT == str(release.resolve() / ".djdeploy" / "static")
    assert module.MEDIA_ROOT == s.media_dir
    assert "http://app1.example.com" in module.CSRF_TRUSTED_ORIGINS
    assert module.LOGGING["handlers"]["journal"]["class"] == "logging.StreamHandler"


def test_the_apps_sqlite_options_are_kept_under_the_deploys_database(settings, tmp_path, monkeypatch):
    """Web, workers and jobs share the file: WAL, a busy timeout and immediate transactions
    by default (Django 5.1+), and the app's own OPTIONS on top (they were dropped before)."""
    import django

    app = TUTORIAL.replace('"NAME": BASE_DIR / "db.sqlite3"}',
                           '"NAME": BASE_DIR / "db.sqlite3", "OPTIONS": {"timeout": 7, "transaction_mode": "EXCLUSIVE"}}')
    s, _, module = load_settings(tmp_path, monkeypatch, settings, app)
    database = module.DATABASES["default"]
    assert database["NAME"] == f"{s.data_dir}/db.sqlite3"
    assert database["OPTIONS"]["timeout"] == 7 and database["OPTIONS"]["transaction_mode"] == "EXCLUSIVE"
    assert django.VERSION < (5, 1) or "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    _, _, plain = load_settings(tmp_path / "plain", monkeypatch, settings, TUTORIAL)
    assert plain.DATABASES["default"]["OPTIONS"] == {"timeout": 20, "transaction_mode": "IMMEDIATE",
                                                     "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}


def test_kept_settings_stay_as_the_app_has_them(settings, tmp_path, monkeypatch):
    kept = dataclasses.replace(settings, keep_app_settings=("DEBUG", "STATIC_ROOT", "ALLOWED_HOSTS"))
    _, release, module = load_settings(tmp_path, monkeypatch, kept, TUTORIAL)
    assert module.DEBUG is True and module.ALLOWED_HOSTS == []
    assert module.STATIC_ROOT == release / "staticfiles"
    assert module.SECRET_KEY == "the-hosts-own-key"


def test_hostile_allowed_hosts_stay_data(settings, tmp_path, monkeypatch):
    """A value with quotes and a line break is a string in the module, not code."""
    hostile = dataclasses.replace(settings, allowed_hosts=('x"]\nimport os; os.system("id")\n#', "ok"))
    _, _, module = load_settings(tmp_path, monkeypatch, hostile, TUTORIAL)
    assert module.ALLOWED_HOSTS == ['x"]\nimport os; os.system("id")\n#', "ok"]


def test_a_secret_key_given_as_a_secret_wins(settings, tmp_path, monkeypatch):
    """DJANGO_SECRET_KEY from secrets/ (in .env): every host of a fleet signs with it."""
    _, _, module = load_settings(tmp_path, monkeypatch, settings, TUTORIAL, {"DJANGO_SECRET_KEY": "from-secrets"})
    assert module.SECRET_KEY == "from-secrets"
    import os
    assert "SECRET_KEY" not in os.environ  # what the module set for the app's import is gone


def test_a_project_that_imports_its_own_folder_as_a_package_finds_it_in_the_release(tmp_path, monkeypatch):
    """django-unicorn's example: manage.py sits inside the package it names
    (example.project.settings) and puts the folder above on sys.path. The deploy finds
    that, and its settings import the release as `example`, whatever its folder's name."""
    import importlib
    import sys

    app = tmp_path / "unicorn"  # not named "example", as a copy of it may not be
    (app / "project").mkdir(parents=True)
    (app / "manage.py").write_text('import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", '
                                   '"example.project.settings")\n')
    (app / "project" / "__init__.py").write_text("")
    (app / "project" / "settings.py").write_text(
        "import os\nBASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))\n"
        'WSGI_APPLICATION = "example.project.wsgi.application"\n')
    (app / "project" / "wsgi.py").write_text("application = 'the app'\n")
    monkeypatch.chdir(tmp_path)
    s = parse("web1", {"app_user": "web", "port": 80, "app_path": "unicorn",
                       "requirements": str(ROOT / "app" / "requirements.txt")})
    assert (s.settings_module, s.wsgi_module, s.app_package) == (
        "example.project.settings", "example.project.wsgi", "example")
    assert s.environment["DJDEPLOY_APP_PACKAGE"] == "example"
    (tmp_path / "django").mkdir()
    (tmp_path / "django" / "djdeploy_settings.py").write_text(render("settings.py.j2", s))
    monkeypatch.setenv("DJDEPLOY_RELEASE", str(app))
    monkeypatch.setenv("DJANGO_SECRET_KEY", "a-secret")
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    monkeypatch.syspath_prepend(str(tmp_path / "django"))
    names = ("djdeploy_settings", "example", "example.project", "example.project.settings", "example.project.wsgi")
    try:
        module = importlib.import_module("djdeploy_settings")
        assert module.BASE_DIR == str(app)
        assert importlib.import_module("example.project.wsgi").application == "the app"
    finally:
        for name in names:
            sys.modules.pop(name, None)
    plain = parse("web1", {"app_user": "web", "port": 80, "app_path": str(ROOT / "app")})
    assert plain.app_package == "" and "DJDEPLOY_APP_PACKAGE" not in plain.environment
