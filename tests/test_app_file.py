"""What the app needs travels with the app (djdeploy.toml beside manage.py, or
[tool.djdeploy] in its pyproject.toml); what the fleet decides stays in data, and data
wins, so a third-party app is deployed by data alone."""

import shutil
from pathlib import Path

import pytest

from djdeploy.config.keys import APP_KEYS, DEFAULTS
from djdeploy.config.settings import parse
from djdeploy.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
FLEET_DATA = {"app_user": "web", "port": 80}


@pytest.fixture
def app(tmp_path, monkeypatch):
    """A copy of the sample app without its app file, in a folder of its own."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__", "djdeploy.toml"))
    return tmp_path / "app"


def test_the_shipped_group_data_holds_nothing_of_the_sample_app():
    """A newcomer who points app_path at their app gets none of the sample's needs."""
    for path in (ROOT / "group_data").glob("*.py"):
        names = {}
        exec(compile(path.read_text(), str(path), "exec"), names)
        app_keys = {k for k in names if k in APP_KEYS and k != "processes"}
        assert not app_keys, (path.name, app_keys)
        for name, fields in names.get("processes", {}).items():
            assert set(fields) == {"count"}, (path.name, name, fields)  # the fleet scales; the app says what


def test_the_app_file_gives_the_apps_keys_under_data(app):
    (app / "djdeploy.toml").write_text('health_path = "/up"\nrequirements = "reqs/prod.txt"\n'
                                      'debian_packages = ["gettext"]\nrelease_commands = ["compilemessages"]\n'
                                      '[app_env]\nGREETING = "hi"\n')
    (app / "reqs").mkdir()
    (app / "reqs" / "prod.txt").write_text("Django\n")
    s = parse("web1", {**FLEET_DATA, "app_path": "app"}, ["web"])
    assert (s.health_path, s.requirements, s.debian_packages, s.release_commands, s.app_env["GREETING"]) == (
        "/up", Path("app/reqs/prod.txt"), ("gettext",), ("compilemessages",), "hi")
    over = parse("web1", {**FLEET_DATA, "app_path": "app", "health_path": "/other", "app_env": {"B": "2"}}, ["web"])
    assert over.health_path == "/other" and over.app_env == {"B": "2"}  # data wins, whole keys


def test_without_an_app_file_the_deploy_finds_or_defaults_the_rest(app):
    s = parse("web1", {**FLEET_DATA, "app_path": "app"}, ["web"])
    assert s.health_path == "/-/up" and s.requirements == Path("app/requirements.txt")
    assert s.processes == () and s.timers == ()


def test_pyproject_tool_djdeploy_is_read_when_there_is_no_app_file(app):
    (app / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.djdeploy]\nhealth_path = "/ping"\n')
    assert parse("web1", {**FLEET_DATA, "app_path": "app"}, ["web"]).health_path == "/ping"
    (app / "djdeploy.toml").write_text('health_path = "/own"\n')
    assert parse("web1", {**FLEET_DATA, "app_path": "app"}, ["web"]).health_path == "/own"


def test_the_app_says_what_a_process_runs_and_data_how_many(app):
    (app / "djdeploy.toml").write_text('[processes.worker]\ncommand = "python manage.py work"\nstop_timeout = 60\n')
    web = parse("web1", {**FLEET_DATA, "app_path": "app"}, ["web"])
    assert [(p.name, p.count) for p in web.processes] == [("worker", 0)]  # a Procfile's scale: none unless asked
    worker = parse("w1", {**FLEET_DATA, "app_path": "app", "processes": {"worker": {"count": 2}}}, ["worker"])
    assert [(p.command, p.count, p.stop_timeout) for p in worker.processes] == [("python manage.py work", 2, 60)]
    named = parse("w1", {**FLEET_DATA, "app_path": "app", "processes": {"worker": {"stop_timeout": 5}}}, ["worker"])
    assert [(p.count, p.stop_timeout) for p in named.processes] == [(1, 5)]


@pytest.mark.parametrize("text, message", [
    ('port = 80\n', "app/djdeploy.toml: port is decided by the fleet, not the app: set it in group_data/<group>.py"),
    ('domain = "x.example"\n', "app/djdeploy.toml: domain is decided by the fleet, not the app"),
    # An app (or what edits it) may not choose where its packages come from: the operator allows an index.
    ('package_indexes = ["https://evil.example/simple"]\n', "app/djdeploy.toml: package_indexes is decided by the fleet"),
    ('helth_path = "/x"\n', "app/djdeploy.toml: unknown key 'helth_path': the app file takes requirements, "),
    ('health_path = \n', "app/djdeploy.toml: Invalid value (at line 1, column 15): fix it (TOML, key = value lines)"),
    ('health_path = "no slash"\n', "app/djdeploy.toml: health_path = 'no slash': not a valid value"),
    ('timers = 3\n', "app/djdeploy.toml: timers = 3:"),
    ('health_path = "/a\\nb"\n', "health_path holds a line break"),
], ids=["fleet-key", "domain", "index", "typo", "not-toml", "bad-value", "wrong-type", "line-break"])
def test_a_wrong_app_file_is_one_line_naming_it(app, text, message):
    (app / "djdeploy.toml").write_text(text)
    with pytest.raises(DataError) as error:
        parse("web1", {**FLEET_DATA, "app_path": "app"}, ["web"])
    assert any(message in line for line in error.value.problems), error.value.problems
    assert all("\n" not in line for line in error.value.problems)


def test_every_app_key_is_a_data_key():
    assert set(APP_KEYS) <= set(DEFAULTS)
