"""Hostile inputs, tried as an attacker would: each case names the hole it closes and
asserts the exact outcome. (The fleet cases, which need real hosts, are marked `fleet`.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PROJECT, PYINFRA, ROOT, http_get, results
from djdeploy.config.keys import ENV_VARIABLE_MAX
from djdeploy.config.settings import parse
from djdeploy.errors import DataError
from test_units import StandInHost, on

def hostile(value: str) -> list[str]:
    """The problems a web host's data with `value` in each string key gets."""
    problems = []
    for key in ("description", "health_host", "app_user", "settings_module", "wsgi_module", "health_path"):
        try:
            parse("web1", {"app_user": "web", "port": 8080, key: value}, ["web"])
        except DataError as error:
            problems.append((key, error.problems))
        else:
            problems.append((key, []))
    return problems


# --- Injection through data --------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "shop\nExecStartPre=+/bin/sh -c 'id > /tmp/pwned'",
    "shop\rExecStartPre=+/bin/true",
    "shop\x00",
    "shop\x1b[31m",
])
def test_a_line_break_in_any_data_string_is_refused(value, monkeypatch):
    monkeypatch.chdir(ROOT)
    for key, problems in hostile(value):
        assert problems, f"{key} = {value!r} was accepted"
        assert any(p.startswith(f"host web1 (group web): {key}") for p in problems), problems


def test_the_units_description_cannot_add_a_directive(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8080,
                       "description": "shop\nExecStartPre=+/bin/sh -c 'id > /tmp/pwned'"}, ["web"])
    assert error.value.problems == ["host web1 (group web): description holds a line break (at character 5): "
                                    "data values are one line of text: remove it"]


@pytest.mark.parametrize("key, value", [
    ("allowed_hosts", ["shop.example\nDJANGO_DEBUG=1"]),
    ("release_commands", ["migrate\n--fake"]),
    ("debian_packages", ["gettext\nopenssh-server"]),
    ("keep_app_settings", ["DEBUG\n"]),
])
def test_a_line_break_inside_a_list_is_refused(key, value, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8080, key: value}, ["web"])
    assert any(p.startswith(f"host web1 (group web): {key}.0 holds a line break") for p in error.value.problems)


@pytest.mark.parametrize("srv", ["/srv/x y", "/srv/x'y", '/srv/x"y', "/srv/$(id)", "/srv/x;y", "/srv/x`y`",
                                 "/srv/x\\y", "/srv/*"])
def test_srv_with_a_shell_character_is_refused(srv, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8080, "srv": srv, "allow_outside_srv": True}, ["web"])
    assert error.value.problems[0].startswith(f"host web1 (group web): srv = {srv!r}: not a valid value: "
                                              "an absolute folder under /srv, of letters")


def test_safe_srv_folders_still_pass(monkeypatch):
    monkeypatch.chdir(ROOT)
    for srv in ("/srv", "/srv/", "/srv/apps", "/srv/team-a/apps_2.0"):
        assert parse("web1", {"app_user": "web", "port": 8080, "srv": srv}, ["web"]).root.startswith("/srv")


def test_a_huge_data_string_is_refused(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8080, "description": "x" * 100_000}, ["web"])
    assert error.value.problems == ["host web1 (group web): description is 100,000 characters, more than 4,096: "
                                    "shorten it"]


# --- Sizes nobody checked ------------------------------------------------------------------

def test_a_value_too_big_for_one_environment_variable_is_refused_naming_it(monkeypatch):
    monkeypatch.chdir(ROOT)
    big = "x" * 140_000
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8080, "app_env": {"BLOB": big}}, ["web"])
    (problem,) = error.value.problems
    assert problem == (f"host web1 (group web): app_env: BLOB is 140,005 bytes with its name, more than the "
                       f"{ENV_VARIABLE_MAX:,} one environment variable can hold on Linux: keep large data in a "
                       "file, and put its path here")
    assert big not in problem


def test_the_largest_value_one_variable_can_hold_is_accepted(monkeypatch):
    monkeypatch.chdir(ROOT)
    value = "x" * (ENV_VARIABLE_MAX - len("BLOB="))
    s = parse("web1", {"app_user": "web", "port": 8080, "app_env": {"BLOB": value}}, ["web"])
    assert s.app_env["BLOB"] == value


def test_a_huge_secret_is_refused_before_any_host_changes(tmp_path):
    """A secret of 3 MiB: one line naming it and the limit; no part of it printed."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    marker = "Zq" * (3 * 2 ** 19)
    (folder / "web.toml").write_text(f'HUGE = "{marker}"\n')
    (folder / "web.toml").chmod(0o600)
    env = dict(os.environ, DJDEPLOY_SECRETS_DIR=str(folder), DJDEPLOY_FAKE_HOSTS="1")
    result = subprocess.run([PYINFRA, "-y", "tests/fake_inventory.py", "deploy.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"{folder}/web.toml: HUGE is 3,145,733 bytes with its name, more than the {ENV_VARIABLE_MAX:,}" in output
    assert "Zq" * 8 not in output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if line.startswith("error:")]) == 1, output[-2000:]
    assert "Starting operation" not in output  # before any host changed


def test_a_whole_env_file_too_big_is_refused(monkeypatch):
    """Each variable fits, their sum does not: checked as the .env would be rendered."""
    from types import SimpleNamespace

    from djdeploy import preflight

    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 8080}, ["web"])
    secrets = {f"PART{i}": "y" * 120_000 for i in range(10)}
    host = SimpleNamespace(name="web1", state=SimpleNamespace(cwd=str(ROOT), inventory=[]))
    problems = preflight.check_templates(host, s, secrets)
    assert [p for p in problems if ".env would be" in p] == [
        f"host web1: .env would be {len(preflight.render_env('templates/env.j2', s, secrets).encode()):,} bytes, "
        "more than 1,048,576 (Linux passes it to the app with its arguments): keep large data in files"]


# --- Unicode line breaks -------------------------------------------------------------------

@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\u0085", "\x1c", "\x1d", "\x1e"])
def test_a_unicode_line_break_in_a_secret_arrives_byte_for_byte(breaker, tmp_path, monkeypatch):
    """What the .env operation sends, fed through pyinfra's own stdin writer into its own
    remote command: the file on disk is the rendered text, byte for byte, and its
    digest is the one the next run compares (so the run converges)."""
    from pyinfra.connectors.util import write_stdin

    from djdeploy.config.envfile import Secrets, file_digest
    from djdeploy.ops import uploads
    from djdeploy.ops.facts import EnvFile

    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 8080}, ["web"])
    dest = tmp_path / ".env.next"  # waits there for the switch (release.sh move_in)
    s = type(s)(**{**s.__dict__, "srv": str(tmp_path), "project": "p"})
    secrets = Secrets(TOKEN=f"a{breaker}b")
    monkeypatch.setattr(uploads, "logger", type("L", (), {"info": staticmethod(lambda *a: None)}))
    with on(StandInHost({EnvFile: None})):
        (command,) = list(uploads.env_file._inner(s, "templates/env.j2", secrets))
    script = command.get_raw_value().replace(f"chown root:{s.group}", f"chown {os.getuid()}:{os.getgid()}")
    script = script.replace(s.env_file, str(tmp_path / ".env"))
    process = subprocess.Popen(["bash", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)

    class Buffer:
        def write(self, data):
            process.stdin.write(data)

        def close(self):
            process.stdin.close()

    write_stdin(command.connector_arguments["_stdin"], Buffer())
    said = process.stdout.read()
    assert process.wait(timeout=30) == 0
    assert f"a{breaker}b".encode() not in said and command.get_masked_value().count("a" + breaker) == 0
    text = uploads.render_env("templates/env.j2", s, secrets)
    assert dest.read_bytes() == text.encode()
    salt = f"djdeploy-env:{s.project}"
    assert hashlib_digest(dest, salt) == file_digest(text, salt)


def hashlib_digest(path: Path, salt: str) -> str:
    import hashlib

    return hashlib.sha256(salt.encode() + b"\0" + path.read_bytes()).hexdigest()


# --- A .env that did not arrive whole --------------------------------------------------------

def test_a_cut_off_env_never_replaces_the_good_one(tmp_path, monkeypatch):
    """The controller is killed while .env is sent: the host keeps the .env it had, and no
    new one waits for the switch."""
    from djdeploy.config.envfile import Secrets
    from djdeploy.ops import uploads
    from djdeploy.ops.facts import EnvFile

    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 8080}, ["web"])
    secrets = Secrets(**{f"S{i}": f"secret-{i}-" + "v" * 200 for i in range(20)})
    monkeypatch.setattr(uploads, "logger", type("L", (), {"info": staticmethod(lambda *a: None)}))
    with on(StandInHost({EnvFile: None})):
        (command,) = list(uploads.env_file._inner(s, "templates/env.j2", secrets))
    dest = tmp_path / ".env"
    dest.write_text("GOOD=1\n")
    script = command.get_raw_value().replace(f"chown root:{s.group}", f"chown {os.getuid()}:{os.getgid()}")
    script = script.replace(s.env_file, str(dest))
    sent = "".join(command.connector_arguments["_stdin"])
    for cut in (0, 10, 65, len(sent) // 2, len(sent) - 1):
        result = subprocess.run(["bash", "-c", script], input=sent[:cut], capture_output=True, text=True, timeout=30)
        assert result.returncode == 1, cut
        assert dest.read_text() == "GOOD=1\n"
        assert result.stderr.strip().endswith(".env did not arrive whole: left as it was")
        assert "secret-" not in result.stdout + result.stderr  # no part of a secret said
        assert not list(tmp_path.glob(".env.*"))  # no half file left beside it
    result = subprocess.run(["bash", "-c", script], input=sent, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and dest.read_text() == "GOOD=1\n"
    assert (tmp_path / ".env.next").read_text() == sent.split("\n", 1)[1]  # waits for the switch


@pytest.mark.parametrize("cut", [0, 1, 100, -1])
def test_a_cut_upload_never_replaces_the_file_in_place(cut, tmp_path):
    """SFTP writes in place: a controller killed during an upload left a cut run script,
    unit or settings file under its real name. Each upload now lands as <name>.part and is
    renamed only if its SHA-1 is the one the controller computed."""
    import hashlib

    from djdeploy.ops.uploads import arrived_whole

    content = (ROOT / "files" / "release.sh").read_bytes()
    final = tmp_path / "run.next"
    final.write_text("the run script in place\n")
    (tmp_path / "run.next.part").write_bytes(content[:cut])
    user, group = str(os.getuid()), str(os.getgid())
    command = arrived_whole(str(final), hashlib.sha1(content).hexdigest(), user, group, "0750", shown="/srv/p/run")
    result = subprocess.run(["bash", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == "/srv/p/run did not arrive whole: left as it was\n"
    assert final.read_text() == "the run script in place\n" and not (tmp_path / "run.next.part").exists()
    (tmp_path / "run.next.part").write_bytes(content)  # whole: renamed, with its mode
    result = subprocess.run(["bash", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and final.read_bytes() == content and oct(final.stat().st_mode & 0o777) == "0o750"


# --- Secrets files that are symlinks ------------------------------------------------------------

@pytest.mark.parametrize("target", ["tracked", "dangling"])
def test_a_secrets_file_that_is_a_symlink_is_refused(target, tmp_path, monkeypatch):
    from djdeploy.config import envfile

    folder = tmp_path / "secrets"
    folder.mkdir()
    pointed = ROOT / "group_data" / "web.py" if target == "tracked" else tmp_path / "nowhere.toml"
    (folder / "web.toml").symlink_to(pointed)
    monkeypatch.setenv("DJDEPLOY_SECRETS_DIR", str(folder))
    envfile._read_file.cache_clear()
    with pytest.raises(DataError) as error:
        envfile.load("web1", ["web"])
    assert error.value.problems == [f"{folder}/web.toml: a symlink (to {pointed}): secrets files must be regular "
                                    f"files: put the file itself in {folder} (chmod 600, untracked)"]


# --- Only the app's own files enter a release ------------------------------------------------------

def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_a_release_of_the_project_folder_holds_no_secrets_and_nothing_git_ignores(tmp_path, monkeypatch):
    """manage.py beside deploy.py (app_path = "."): the secrets of every group, the servers
    file, and whatever git ignores stay out of the archive."""
    from djdeploy import build

    project = tmp_path / "project"
    (project / "secrets").mkdir(parents=True)
    (project / "manage.py").write_text("# manage\n")
    (project / "shop").mkdir()
    (project / "shop" / "views.py").write_text("# views\n")
    (project / "secrets" / "web.toml").write_text('API_TOKEN = "s3cr3t"\n')
    (project / "secrets" / "staging.toml").write_text('API_TOKEN = "s3cr3t-too"\n')
    (project / ".gitignore").write_text("servers.toml\nsecrets/*.toml\nlocal_settings.py\n")
    (project / "servers.toml").write_text("[web]\nhosts = ['a']\n")
    (project / "local_settings.py").write_text("PASSWORD = 'hunter2'\n")
    git("init", "-q", cwd=project)
    git("add", "manage.py", "shop", ".gitignore", cwd=project)
    (project / "shop" / "new_module.py").write_text("# untracked, not ignored: shipped\n")
    monkeypatch.chdir(project)
    monkeypatch.delenv("DJDEPLOY_SECRETS_DIR", raising=False)
    assert build.source_files(Path(".")) == [".gitignore", "manage.py", "shop/new_module.py", "shop/views.py"]


def test_the_secrets_folder_stays_out_even_without_git(tmp_path, monkeypatch):
    from djdeploy import build

    project = tmp_path / "project"
    (project / "secrets").mkdir(parents=True)
    (project / "manage.py").write_text("# manage\n")
    (project / "secrets" / "web.toml").write_text('API_TOKEN = "s3cr3t"\n')
    monkeypatch.chdir(project)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # not inside any git work tree
    assert build.source_files(Path(".")) == ["manage.py"]


def test_a_symlink_out_of_the_app_is_refused(tmp_path, monkeypatch):
    from djdeploy import build

    app = tmp_path / "app"
    app.mkdir()
    (app / "manage.py").write_text("# manage\n")
    (app / "key").symlink_to(Path.home() / ".ssh" / "id_ed25519")
    (app / "inside").symlink_to(app / "manage.py")  # within the app: shipped as a file
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with pytest.raises(build.BuildError) as error:
        build.source_files(app)
    assert str(error.value) == (f"{app}/key is a symlink to {Path.home() / '.ssh' / 'id_ed25519'}, outside the app: "
                                "copy what it points to into the app, or remove it")
    (app / "key").unlink()
    assert build.source_files(app) == ["inside", "manage.py"]


@pytest.mark.parametrize("target", ["secrets/web.toml", ".env", "db.sqlite3", "ignored.txt"])
@pytest.mark.parametrize("git", [True, False])
def test_a_symlink_to_a_file_a_release_does_not_hold_is_refused(tmp_path, monkeypatch, target, git):
    """A link inside the app to a git-ignored file, .env, a database or the secrets folder
    (app_path = "."): its bytes went into the release under the link's name, and under a
    static folder the front served them to anyone."""
    from djdeploy import build

    app = tmp_path / "app"
    (app / "static" / "css").mkdir(parents=True)
    (app / "manage.py").write_text("# manage\n")
    (app / ".gitignore").write_text("ignored.txt\n")
    monkeypatch.chdir(app)  # app_path = ".": the secrets folder is inside it
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (app / target).parent.mkdir(exist_ok=True)
    (app / target).write_text("SECRET=s3cr3t\n")
    (app / "static" / "css" / "site.css").symlink_to(app / target)
    if git:
        subprocess.run(["git", "init", "-q", str(app)], check=True)
    if not git and target == "ignored.txt":  # only git ignores it: without git, it is the app's
        assert "static/css/site.css" in build.source_files(Path("."))
        return
    with pytest.raises(build.BuildError) as error:
        build.source_files(Path("."))
    assert str(error.value).startswith(f"./static/css/site.css is a symlink to {app / target}, which a release "
                                       "does not hold"), str(error.value)
    assert "\n" not in str(error.value)


# --- Messages ------------------------------------------------------------------------------------

def test_a_syntax_error_in_group_data_is_one_line(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("deploy.py", "inventory.py", "group_data", "templates", "files", "app"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, project / name)
    (project / "group_data" / "web.py").write_text("app_user = 'web'\nport = 80 +\n")
    env = dict(os.environ, DJDEPLOY_FLEET="no-such-fleet-here", PYTHONPATH=str(ROOT))  # this tree's djdeploy
    result = subprocess.run([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "error: group_data/web.py line 2: invalid syntax: fix it (plain assignments, e.g. port = 80)" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "internal" not in result.stdout + result.stderr
    assert len([line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error:")]) == 1


@pytest.mark.parametrize("stalls, outcome", [(1, 0), (3, 1)])
def test_a_stalled_apt_update_is_cut_and_tried_again(stalls, outcome, tmp_path, monkeypatch):
    """Seen on the fleet: a caching proxy asked by 8 hosts at once left two hosts' `apt-get
    update` waiting for ever (the deploy hung). Each try is cut after APT_UPDATE_TIMEOUT; a
    later one goes through; three stalls end in one line."""
    from djdeploy.ops import system
    from djdeploy.ops.facts import MissingPackages

    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    (fake / "apt-get").write_text(f"""#!/bin/bash
echo "$*" >> {calls}
if [[ " $* " == *" update "* ]] && [ "$(grep -c update {calls})" -le {stalls} ]; then sleep 30; fi
exit 0
""")
    (fake / "apt-get").chmod(0o755)
    monkeypatch.setattr(system, "APT_UPDATE_TIMEOUT", 1)
    with on(StandInHost({MissingPackages: ["curl"]})):
        (command,) = list(system.debian_packages._inner(["curl"]))
    result = subprocess.run(["bash", "-c", command.get_raw_value()], env=dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == outcome, result.stderr
    updates = [line for line in calls.read_text().splitlines() if line.endswith(" update")]
    if outcome == 0:
        assert len(updates) == stalls + 1 and calls.read_text().splitlines()[-1].endswith("install --no-install-recommends curl")
    else:
        assert len(updates) == 3 and "install" not in calls.read_text()
        assert result.stderr.strip() == ("apt-get update failed on this host (3 tries; the last: E: no answer within 1 s): "
                                         "check its apt sources and proxy (/etc/apt)")


# --- Two deploys at once (on the shared test fleet) --------------------------------------------

@pytest.mark.fleet
def test_two_deploys_started_together_one_proceeds_the_other_stops_with_one_line(fleet, deployed):
    """Started 0.3 s apart, each with a change for every host: before, each could take some
    hosts' locks and both waited in vain. Locks are taken in one order now: exactly one
    deploy proceeds; the other stops at the first host, within its lock_wait, with one line."""
    import time

    from conftest import TEST_FLEET, run_pyinfra

    env = dict(os.environ, DJDEPLOY_FLEET=TEST_FLEET)
    env.pop("DJDEPLOY_SERVERS", None)

    def start(tag: str) -> subprocess.Popen:
        return subprocess.Popen([PYINFRA, "-y", "inventory.py", "deploy.py", "--data", "lock_wait=3",
                                 "--data", f'app_env={{"CONCURRENT": "{tag}"}}'], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)

    import threading

    runs = [start("a")]
    time.sleep(0.3)
    runs.append(start("b"))
    outputs, ended = [None, None], [None, None]

    def collect(i):
        outputs[i] = runs[i].communicate(timeout=600)[0]
        ended[i] = time.monotonic()

    collectors = [threading.Thread(target=collect, args=(i,)) for i in (0, 1)]
    for collector in collectors:
        collector.start()
    for collector in collectors:
        collector.join(610)
    try:
        assert sorted(run.returncode for run in runs) == [0, 1], "\n\n".join(o[-3000:] for o in outputs)
        loser = [run.returncode for run in runs].index(1)
        stopped = outputs[loser]
        errors = [line for line in stopped.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, stopped[-3000:]
        assert re.search(r"^error: 169\.254\.\d+\.2: deploy lock held by \S+ pid \d+ since \S+: wait for that "
                         r"deploy.*; no host was changed$", errors[0]), errors
        # It stopped within its lock_wait, while the other still worked, and changed nothing:
        # every host has the winner's .env.
        assert ended[loser] < ended[1 - loser], ended
        winner = "ab"[1 - loser]
        for host in fleet.hosts:
            env_line = fleet.ssh(host, f"grep '^CONCURRENT=' /srv/{PROJECT}/shared/.env").stdout.strip()
            assert env_line in (f"CONCURRENT={winner}", f"CONCURRENT='{winner}'", f'CONCURRENT="{winner}"'), env_line
    finally:
        assert run_pyinfra("-y").returncode == 0  # the fleet as the other tests expect it


# --- Hostile values in every data key ----------------------------------------------------------

HOSTILE = [
    "a\nExecStartPre=+/bin/sh -c id",  # a new unit directive, a new shell line
    "x' ; touch /tmp/pwned; '", 'x"; import os; os.system("id"); "', "$(id)", "`id`",  # quotes, commands
    "{{ 7 * 7 }}", "{% raw %}", "\\", "%(x)s", "a b", "*", "--help", "../../etc/passwd",  # templates, globs, options
    "caf\u00e9\u2028x", "x\x00y", "x" * 5000,  # a Unicode line break, a NUL, a huge value
]


def rendered(s) -> dict:
    """Every file the deploy writes from data, as the deploy renders it."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from djdeploy.ops.releases import tool_env
    from djdeploy.ops.uploads import render_env

    env = Environment(loader=FileSystemLoader(ROOT), undefined=StrictUndefined, keep_trailing_newline=True)
    files = {name: env.get_template(f"templates/{name}").render(s=s, py=repr)
             for name in ("run.j2", "app.service.j2", "app.socket.j2", "settings.py.j2", "Caddyfile.j2",
                          "site.caddy.j2", "front.conf.j2")}
    files[".env"] = render_env("templates/env.j2", s, {})
    files["release.sh's environment"] = tool_env(s)
    return files


def shape(files: dict) -> dict:
    """What a hostile value must not change: the directives of the units, the lines of the run
    script (and that bash parses it), the directives and blocks of the front's Caddyfiles, the statements of settings.py, the variables .env and
    release.sh's environment set (read back by bash)."""
    import ast

    def bash_names(script: str) -> list:
        out = subprocess.run(["bash", "-c", script + "\nenv -0"], capture_output=True, timeout=30, env={})
        assert out.returncode == 0, out.stderr
        return sorted(v.split(b"=", 1)[0] for v in out.stdout.split(b"\0") if v)

    assert subprocess.run(["bash", "-n"], input=files["run.j2"], text=True, timeout=30).returncode == 0
    return {
        "units": [re.findall(r"^([A-Za-z]+)=", files[n], re.M) for n in ("app.service.j2", "app.socket.j2",
                                                                          "front.conf.j2")],
        # The front's Caddyfiles: each line's directive, and where blocks open and close.
        "caddy": [[(line.split()[0], line.count("{"), line.count("}")) for line in files[n].splitlines()
                   if line.strip() and not line.strip().startswith("#")] for n in ("Caddyfile.j2", "site.caddy.j2")],
        "run": len(files["run.j2"].splitlines()),
        "settings": [type(node).__name__ for node in ast.parse(files["settings.py.j2"]).body],
        ".env": bash_names("set -a; . /dev/stdin <<'DJDEPLOY_END'\n" + files[".env"] + "DJDEPLOY_END\n"),
        "tool": bash_names(files["release.sh's environment"].replace("env ", "export ", 1)),
    }


def test_no_hostile_value_in_any_data_key_changes_the_shape_of_a_file(monkeypatch):
    """For every key of the table, every hostile value (as a string, in a list and in a
    dict): refused with lines that name the key, or written so that no file gains a
    directive, a line, a statement or a variable (checked against the files of the
    defaults). Counts what was refused and what was written, so the test cannot pass empty."""
    from djdeploy.config.keys import KEYS

    monkeypatch.chdir(ROOT)
    base = {"app_user": "web", "port": 8080}
    expected = shape(rendered(parse("web1", base, ["web"])))
    refused = written = 0
    for key in KEYS:
        for value in HOSTILE:
            for form in (value, [value], {"HOSTILE": value}):
                try:
                    s = parse("web1", {**base, key: form}, ["web"])
                except DataError as error:
                    assert error.problems and all(key in p and "\n" not in p for p in error.problems), (key, error.problems)
                    refused += 1
                    continue
                written += 1
                got = shape(rendered(s))
                if key == "app_env":  # its variable is meant to be there: one more, HOSTILE
                    got[".env"].remove(b"HOSTILE")
                assert got == expected, (key, form)
    print(f"\n{len(KEYS)} keys x {len(HOSTILE)} hostile values x 3 forms: {refused} refused, {written} written safely")
    assert refused > 0 and written > 0


def test_no_hostile_value_in_a_timer_changes_its_units(monkeypatch):
    """Each field of a scheduled job (and its name) with every hostile value: refused, naming
    the field, or written so that its service and timer gain no directive and its command
    line no word."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from djdeploy.config.keys import TIMER_FIELDS

    monkeypatch.chdir(ROOT)
    env = Environment(loader=FileSystemLoader(ROOT), undefined=StrictUndefined, keep_trailing_newline=True)

    def units(timers: dict) -> list:
        s = parse("web1", {"app_user": "web", "port": 8080, "timers": timers}, ["web"])
        texts = [env.get_template(f"templates/job.{kind}.j2").render(s=s, timer=s.timers[0]) for kind in ("service", "timer")]
        command = re.search(r"^ExecStart=(.*)$", texts[0], re.M).group(1)
        return [re.findall(r"^([A-Za-z]+)=", text, re.M) for text in texts] + [command.split()[1:]]

    good = {"command": "clearsessions", "on_calendar": "daily", "persistent": True, "randomized_delay": "0",
            "timeout": "1h", "host": "web1"}
    expected = units({"job": good})

    def same_shape(field, value, got):
        words = value.split() if field == "command" else expected[2]  # a command's words are its own
        assert got == [*expected[:2], words], (field, value)

    each_hostile_field("timers", TIMER_FIELDS, "job", good, units, same_shape)


def each_hostile_field(key: str, fields: dict, name: str, good: dict, files, check) -> None:
    """Each field of one entry of `key` (and the entry's name) with every hostile value:
    refused with lines that name `key`, or `check(field, value, files(entries))`. Both
    happen (the loop cannot pass empty), and refusals outnumber what is written."""
    refused = written = 0
    for field in [*fields, "name"]:
        for value in HOSTILE:
            entries = {value: good} if field == "name" else {name: {**good, field: value}}
            try:
                got = files(entries)
            except DataError as error:
                assert all(key in p and "\n" not in p for p in error.problems), error.problems
                refused += 1
                continue
            written += 1
            check(field, value, got)
    assert refused + written == (len(fields) + 1) * len(HOSTILE) and refused > written > 0


def test_no_hostile_value_in_a_process_type_changes_its_unit_or_script(monkeypatch):
    """Each field of a process type (and its name) with every hostile value: refused, naming
    it, or written so that its unit gains no directive, and the process script (which bash
    must parse) hands bash exactly the command given, as one word."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from djdeploy.config.keys import PROCESS_FIELDS

    monkeypatch.chdir(ROOT)
    env = Environment(loader=FileSystemLoader(ROOT), undefined=StrictUndefined, keep_trailing_newline=True)

    def files(processes: dict):
        s = parse("web1", {"app_user": "web", "port": 8080, "processes": processes}, ["web"])
        unit = env.get_template("templates/process.service.j2").render(s=s, process=s.processes[0])
        script = env.get_template("templates/process.j2").render(s=s)
        assert subprocess.run(["bash", "-n"], input=script, text=True, timeout=30).returncode == 0
        arm = re.search(rf"^    {re.escape(s.processes[0].name)}\) exec /bin/bash -c (.*) ;;$", script, re.M).group(1)
        given = subprocess.run(["bash", "-c", f"printf %s {arm}"], capture_output=True, text=True, timeout=30).stdout
        return re.findall(r"^([A-Za-z]+)=", unit, re.M), script.count("\n"), given

    good = {"command": "python manage.py db_worker", "count": 2, "stop_timeout": 60, "stop_signal": "SIGTERM"}
    expected = files({"worker": good})

    def same_shape(field, value, got):
        command = value if field == "command" else good["command"]
        assert got == (*expected[:2], command), (field, value)

    each_hostile_field("processes", PROCESS_FIELDS, "worker", good, files, same_shape)


def test_a_procfile_gives_process_types_and_a_release_command(tmp_path, monkeypatch):
    """The app's Procfile: its types run where data gives them a count (Heroku's and Dokku's
    scale: 0 otherwise); web is the deploy's gunicorn; release is kept for the step before
    the switch."""
    import shutil

    monkeypatch.chdir(ROOT)
    app = tmp_path / "app"
    shutil.copytree(ROOT / "app", app, ignore=shutil.ignore_patterns("__pycache__", "static", "djdeploy.toml"))
    (app / "Procfile").write_text("# the app's\nweb: gunicorn project.wsgi\nworker: python manage.py db_worker\n"
                                  "release: python manage.py migrate\nclock:python manage.py clock\n"
                                  "high_priority: python manage.py db_worker --queue-name high\n")
    s = parse("web1", {"app_user": "web", "port": 8080, "app_path": str(app),
                       "processes": {"clock": {"count": 0}, "worker": {"count": 3}}}, ["web"])
    assert [(p.name, p.command, p.count) for p in s.processes] == [
        ("clock", "python manage.py clock", 0), ("high_priority", "python manage.py db_worker --queue-name high", 0),
        ("worker", "python manage.py db_worker", 3)]  # a type data does not name runs nowhere (Heroku's scale)
    assert s.procfile_release == "python manage.py migrate"
    assert s.process_instances == tuple(f"my_awesome_project-worker@{n}.service" for n in (1, 2, 3))
    with pytest.raises(DataError) as refused:
        parse("web1", {"app_user": "web", "port": 8080, "processes": {"beat": {"count": 1}}}, ["web"])
    assert refused.value.problems == ["host web1 (group web): processes.beat: no command, and the app's Procfile has no beat "
                                      'line: give it one (command = "...")']


# --- Half-applied state on failure (on the shared test fleet) ----------------------------------

def served_state(fleet, host: dict, marker: str = "HALF_APPLIED") -> dict:
    """What a host runs: `current`, the digest of the .env in place, what the app was started
    with (.serving, against the files in place now), the release its process runs and whether
    its environment holds `marker` (names only: no value is read back)."""
    root = f"/srv/{PROJECT}"
    out = fleet.ssh(host, (
        "while pgrep -f '[r]elease.sh switch' >/dev/null; do sleep 0.2; done; "  # a switch still running
        f"cd {root}; "
        f"pid=$(systemctl show -P MainPID {PROJECT}); echo current=$(basename $(readlink current)); "
        f"echo env=$(sha256sum < shared/.env | cut -c1-16); echo serving=$(cat .serving); "
        f"echo runs=$(basename $(readlink /proc/$pid/cwd)); "
        f"echo marker=$(tr '\\0' '\\n' < /proc/$pid/environ | grep -c '^{marker}=' || true)"), timeout=120).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def files_belong_to_the_release(fleet, host: dict) -> bool:
    """The app runs `current` with exactly the files in place (release.sh's config hash)."""
    state = served_state(fleet, host)
    hashed = fleet.ssh(host, f"cd /srv/{PROJECT} && {tool_env_of(fleet, host)} bash -c "
                             "\"$(sed -n '/^config_hash() {/,/^}/p' release.sh); config_hash\"").stdout.strip()
    return state["runs"] == state["current"] and state["serving"] == f"{state['current']} {hashed}"


def tool_env_of(fleet, host: dict) -> str:
    """CONFIG_FILES as the deploy gives it to release.sh (every host of the fleet has the same paths)."""
    return "CONFIG_FILES='" + " ".join(parse("web1", {"app_user": "web", "port": 80}, ["web"]).config_files) + "'"


def secrets_folder(where: Path, values: dict) -> Path:
    folder = where / "secrets"
    folder.mkdir(parents=True)
    (folder / "all.toml").write_text("".join(f'{name} = "{value}"\n' for name, value in values.items()))
    (folder / "all.toml").chmod(0o600)
    return folder


def app_url(host: dict, path: str = "/healthz") -> str:
    return f"http://{host['address']}:{80 if host['group'] == 'web' else 8080}{path}"


@pytest.mark.fleet
@pytest.mark.parametrize("how, said, left", [
    ("health", "failed its health check", 2),  # the first batch's host reverted: nothing left there
    ("migration", "failed its migrations", 3),  # every host stopped before its switch
])
def test_a_failed_run_leaves_every_host_with_the_files_of_the_release_it_serves(fleet, deployed, tmp_path, how,
                                                                                said, left):
    """A run with a new secret whose release fails its health check on the first host. Before,
    every host got the new .env before any switch: the hosts that never switched (and the one
    that reverted) ran the old release with the new secrets at their next restart. Now new
    files wait beside the old ones (<name>.next) until a switch moves them in, and a revert
    moves them back: after a restart, each host runs the release and files it ran before."""
    from secrets import token_urlsafe

    from conftest import broken_release, run_pyinfra, wait_http_200

    value = "half-applied-" + token_urlsafe(24)
    folder = secrets_folder(tmp_path, {"HALF_APPLIED": value})
    before = {h["machine"]: served_state(fleet, h) for h in fleet.hosts}
    assert all(state["marker"] == "0" for state in before.values()), before

    failed = run_pyinfra("-y", cwd=broken_release(tmp_path / "p", how), env={"DJDEPLOY_SECRETS_DIR": str(folder)})
    assert failed.returncode == 1, failed.stdout[-3000:]
    assert said in failed.stdout, failed.stdout[-3000:]
    assert how != "health" or "reverted to" in failed.stdout, failed.stdout[-3000:]
    assert value not in failed.stdout
    for h in fleet.hosts:
        fleet.ssh(h, f"systemctl restart {PROJECT}")  # the next restart: a reboot, a crash, an admin
        assert wait_http_200(app_url(h), timeout=30)[0] == 200, h["machine"]
        assert served_state(fleet, h) == before[h["machine"]], h["machine"]
        assert files_belong_to_the_release(fleet, h), h["machine"]
        journal = fleet.ssh(h, f"journalctl -u {PROJECT} --no-pager -q -o cat --since -10min").stdout
        assert value not in journal

    # The next deploy clears what the failed run left waiting, and converges.
    fixed = run_pyinfra("-y")
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert results(fixed.stdout)["Files a stopped run left"]["changed"] == left
    for h in fleet.hosts:
        assert fleet.ssh(h, f"ls -a /srv/{PROJECT}/shared /srv/{PROJECT} /srv/{PROJECT}/django /etc/systemd/system"
                            " | grep -E '[.](next|prev|part)$' || true").stdout == ""
        assert served_state(fleet, h) == before[h["machine"]]
    assert results(run_pyinfra("-y").stdout)["Grand total"]["changed"] == 0


@pytest.mark.fleet
def test_kill_9_at_every_operation_boundary_then_the_next_deploy_converges(fleet, deployed, tmp_path):
    """The controller is killed as each operation of the recipe that changes something
    starts, in turn, deploy after deploy (two versions, and .env data, alternating: every
    run has new code and a new .env). After each kill the host serves, unchanged or wholly
    on the new release with its files, and the next deploy goes on from there; every row
    written through the app in between is kept. A kill as an operation with nothing to do
    starts leaves the host as a kill at the next one that has work: those are not repeated."""
    from secrets import token_urlsafe

    from conftest import app_version, deploy_killed_at, results, run_pyinfra, wait_http_200
    from test_plan import REDEPLOY

    web = fleet.by_group("web")[0]
    versions = [app_version(tmp_path / name, name) for name in ("killed-a", "killed-b")]
    written = []

    def write_row(text: str) -> None:
        import urllib.parse
        import urllib.request

        for _ in range(20):
            try:
                request = urllib.request.Request(app_url(web, "/notes"), data=urllib.parse.urlencode(
                    {"text": text}).encode())
                with urllib.request.urlopen(request, timeout=5) as response:
                    written.append((json.load(response)["id"], text))
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"no row could be written through the app ({text})")

    secret = "killed-" + token_urlsafe(24)
    # What a run of the loop changes: a whole run of the other version, with new .env data
    # (.env, Release, Switch to the release); what the run after a kill has to clear ("Files
    # a stopped run left"); and the pruning of old releases, whatever the count is now.
    reference = run_pyinfra("-y", "--limit", web["address"], "--data", 'app_env={"KILLED_AT": "reference"}',
                            cwd=versions[1], env={"DJDEPLOY_SECRET_KILL": secret})
    assert reference.returncode == 0, reference.stdout[-3000:]
    changed = {name for name, row in results(reference.stdout).items() if row["changed"]}
    boundaries = [op for op in REDEPLOY if op in changed or op in ("Files a stopped run left", "Old releases")]
    assert {".env", "Release", "Switch to the release"} <= set(boundaries), boundaries
    for number, op in enumerate(boundaries):
        version = versions[number % 2]
        before = served_state(fleet, web)
        output = deploy_killed_at(version, [f"Starting operation: {op}\n"], "--limit", web["address"],
                                  "--data", f'app_env={{"KILLED_AT": "{number}"}}', env={"DJDEPLOY_SECRET_KILL": secret})
        assert secret not in output
        assert wait_http_200(app_url(web), timeout=30)[0] == 200, op
        after = served_state(fleet, web)
        # Unchanged (the release, .env and what the app started with, as before), or wholly
        # on the new release with the files it was started with: never the old release with
        # new files (every run brings new code and a new .env).
        if after["current"] == before["current"]:
            assert {k: after[k] for k in ("runs", "env", "serving")} == \
                {k: before[k] for k in ("runs", "env", "serving")}, (op, before, after)
        else:
            assert files_belong_to_the_release(fleet, web), (op, before, after)
        write_row(f"after a kill at {op}")
    converged = run_pyinfra("-y", "--limit", web["address"], cwd=versions[0], env={"DJDEPLOY_SECRET_KILL": secret})
    assert converged.returncode == 0, converged.stdout[-3000:]
    assert secret not in converged.stdout
    assert served_state(fleet, web, marker="KILL")["marker"] == "1"  # the secret reached the app
    assert secret not in fleet.ssh(web, f"journalctl --no-pager -q -o cat --since -30min; cat /srv/{PROJECT}/revisions.log").stdout
    assert "Django killed-a behind" in wait_http_200(app_url(web, "/"))[1]
    again = run_pyinfra("-y", "--limit", web["address"], cwd=versions[0], env={"DJDEPLOY_SECRET_KILL": secret})
    assert results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-3000:]
    listed = json.loads(wait_http_200(app_url(web, "/notes"))[1])["notes"]
    assert set(written) <= {(n["id"], n["text"]) for n in listed}, (written, listed)
    assert run_pyinfra("-y").returncode == 0  # the fleet as the other tests expect it


# A local user who is not the app's: binds 127.0.0.1:8000 (the address gunicorn had before)
# whenever it is free, answers every connection as the site, counts them, until told to stop
# (/tmp/mallory.stop, or at most argv[1] seconds); and tries the app's own socket folder.
MALLORY = r"""
import os, socket, sys, time
taken, served, deadline = None, 0, time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline and not os.path.exists("/tmp/mallory.stop"):
    if taken is None:
        try:
            taken = socket.socket(); taken.bind(("127.0.0.1", 8000)); taken.listen(64); taken.settimeout(0.05)
        except OSError:
            taken.close(); taken = None; time.sleep(0.005); continue
    try:
        conn, _ = taken.accept()
    except OSError:
        continue
    served += 1
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nmallory"); conn.close()
open("/tmp/mallory.count", "w").write(str(served))
"""


@pytest.mark.fleet
@pytest.mark.parametrize("group", ["staging", "web"])  # the seed's ambient mode, and socket mode
def test_no_other_local_user_can_take_the_apps_address(fleet, deployed, group):
    """A local user looping on bind() took 127.0.0.1:app_port at the app's next restart (the
    seed's ambient mode: gunicorn binds it only while it runs), and the front sent every
    visitor there. The app now listens on a unix socket in the project folder, which other
    users can neither reach nor write: through restarts under their attempts, every answer
    is the app's, and they got no connection."""
    host = fleet.by_group(group)[0]
    port = 8080 if group == "staging" else 80
    fleet.ssh(host, "id mallory >/dev/null 2>&1 || useradd --system --no-create-home mallory; "
                    "rm -f /tmp/mallory.count /tmp/mallory.stop")
    fleet.ssh(host, f"cat > /tmp/mallory.py <<'EOF'\n{MALLORY}\nEOF\n"
                    "setsid runuser -u mallory -- python3 /tmp/mallory.py 120 >/dev/null 2>&1 < /dev/null &")
    for attempt in ("ls /srv/{p}/socket", "touch /srv/{p}/socket/gunicorn.sock",
                    "curl -s --unix-socket /srv/{p}/socket/gunicorn.sock http://localhost/healthz"):
        out = fleet.ssh(host, f"runuser -u mallory -- {attempt.format(p=PROJECT)}; echo rc=$?", check=False)
        assert "rc=0" not in out.stdout, (attempt, out.stdout, out.stderr)
    answers = []
    for _ in range(3):  # a restart, as any deploy or Restart=on-failure makes
        fleet.ssh(host, f"systemctl restart {PROJECT}.service")
        for _ in range(10):
            answers.append(http_get(f"http://{host['address']}:{port}/healthz", timeout=30))
    # Stopped after the restarts (it was trying all along), then its count.
    served = fleet.ssh(host, "touch /tmp/mallory.stop; for i in $(seq 60); do [ -s /tmp/mallory.count ] && break; "
                             "sleep 0.5; done; cat /tmp/mallory.count", timeout=60).stdout.strip()
    assert served == "0", f"mallory answered {served} connections"
    assert all(status == 200 and "mallory" not in body for status, body in answers), answers[:5]
    fleet.ssh(host, "userdel mallory; rm -f /tmp/mallory.py /tmp/mallory.count /tmp/mallory.stop", check=False)




# The app's code at deploy time: its settings, imported by collectstatic, leave a process
# behind that opened a file in the static folder while that folder was the app user's, and
# writes through it once the release is root's and serves.
LEFT_BEHIND = '''
import os as _os, subprocess as _subprocess, sys as _sys
if "collectstatic" in _sys.argv and _os.environ.get("DJDEPLOY_RELEASE"):
    # Waits, its file open, until the folder is root's (the release done), then writes.
    _subprocess.Popen(["/bin/sh", "-c", 'cd "$0/.djdeploy/static" && exec 3>backdoor.js; for i in $(seq 900); do '
                       '[ "$(stat -c %U .)" = root ] && echo "alert(document.cookie)" >&3; sleep 0.2; done',
                       _os.environ["DJDEPLOY_RELEASE"]],
                      start_new_session=True, stdin=_subprocess.DEVNULL, stdout=_subprocess.DEVNULL,
                      stderr=_subprocess.DEVNULL)
'''


@pytest.mark.fleet
def test_the_apps_code_at_deploy_time_runs_sandboxed_and_ends_with_its_step(fleet, deployed, tmp_path):
    """release.sh ran the checks, migrate, collectstatic and release commands with runuser:
    no sandbox, and a process started there outlived the step; one left by collectstatic
    wrote backdoor.js into the release, which the front then served. Each step now runs in
    a transient unit with the app's sandbox, and its processes end with it."""
    from conftest import TEST_FLEET, app_version, run_pyinfra

    web = fleet.by_group("web")[0]
    project = app_version(tmp_path / "p", "left-behind")
    settings = project / "app" / "project" / "settings.py"
    settings.write_text(settings.read_text() + LEFT_BEHIND)
    try:
        result = run_pyinfra("-y", "--limit", web["address"], cwd=project)
        assert result.returncode == 0, result.stdout[-3000:]
        time.sleep(3)  # what a process left behind would have written by now
        status, body = http_get(app_url(web, "/static/backdoor.js"))
        assert "alert" not in body, (status, body)
        left = fleet.ssh(web, "ps -o user=,args= -u web | grep -v -e gunicorn -e db_worker || true").stdout
        assert "sleep" not in left and "/bin/sh" not in left, left
        # A step's unit: the app's sandbox, measured as systemd measures the app's unit.
        step = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "exec.py", web["address"], "--", "shell",
                                 "-c", "import time; time.sleep(20)"], cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "DJDEPLOY_FLEET": TEST_FLEET})
        try:
            unit = ""
            for _ in range(50):
                unit = fleet.ssh(web, f"systemctl list-units --no-legend --plain '{PROJECT}-step-*' | "
                                      "awk '{print $1}' | head -n 1").stdout.strip()
                if unit:
                    break
                time.sleep(0.3)
            assert unit, "no step unit ran exec.py's command"
            score = fleet.ssh(web, f"systemd-analyze security {unit} | tail -n 1").stdout
            app = fleet.ssh(web, f"systemd-analyze security {PROJECT}.service | tail -n 1").stdout
            found = [float(re.search(r"level for \S+: (\d+\.\d+)", s).group(1)) for s in (score, app)]
            print(f"\nexposure: release step {found[0]}, app {found[1]}")
            assert found[0] <= found[1] + 0.1, (score, app)
        finally:
            step.wait(timeout=60)
        assert step.returncode == 0, step.stdout.read()[-2000:]
    finally:
        assert run_pyinfra("-y", "--limit", web["address"]).returncode == 0  # the fleet as the other tests expect it
