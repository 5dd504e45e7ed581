"""Hostile inputs, tried as an attacker would: each case names the hole it closes and
asserts the exact outcome. (The fleet cases, which need real hosts, are marked `fleet`.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PYINFRA, ROOT
from djdeploy.config.keys import ENV_VARIABLE_MAX
from djdeploy.config.settings import parse
from djdeploy.errors import DataError
from test_units import StandInHost, on

def hostile(value: str) -> list[str]:
    """The problems a web host's data with `value` in each string key gets."""
    problems = []
    for key in ("description", "health_host", "app_user", "settings_module", "wsgi_module", "health_path"):
        try:
            parse("web1", {"app_user": "web", "port": 8000, key: value}, ["web"])
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
        parse("web1", {"app_user": "web", "port": 8000,
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
        parse("web1", {"app_user": "web", "port": 8000, key: value}, ["web"])
    assert any(p.startswith(f"host web1 (group web): {key}.0 holds a line break") for p in error.value.problems)


@pytest.mark.parametrize("srv", ["/srv/x y", "/srv/x'y", '/srv/x"y', "/srv/$(id)", "/srv/x;y", "/srv/x`y`",
                                 "/srv/x\\y", "/srv/*"])
def test_srv_with_a_shell_character_is_refused(srv, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8000, "srv": srv, "allow_outside_srv": True}, ["web"])
    assert error.value.problems[0].startswith(f"host web1 (group web): srv = {srv!r}: not a valid value: "
                                              "an absolute folder under /srv, of letters")


def test_safe_srv_folders_still_pass(monkeypatch):
    monkeypatch.chdir(ROOT)
    for srv in ("/srv", "/srv/", "/srv/apps", "/srv/team-a/apps_2.0"):
        assert parse("web1", {"app_user": "web", "port": 8000, "srv": srv}, ["web"]).root.startswith("/srv")


def test_a_huge_data_string_is_refused(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8000, "description": "x" * 100_000}, ["web"])
    assert error.value.problems == ["host web1 (group web): description is 100,000 characters, more than 4,096: "
                                    "shorten it"]


# --- Sizes nobody checked ------------------------------------------------------------------

def test_a_value_too_big_for_one_environment_variable_is_refused_naming_it(monkeypatch):
    monkeypatch.chdir(ROOT)
    big = "x" * 140_000
    with pytest.raises(DataError) as error:
        parse("web1", {"app_user": "web", "port": 8000, "app_env": {"BLOB": big}}, ["web"])
    (problem,) = error.value.problems
    assert problem == (f"host web1 (group web): app_env: BLOB is 140,005 bytes with its name, more than the "
                       f"{ENV_VARIABLE_MAX:,} one environment variable can hold on Linux: keep large data in a "
                       "file, and put its path here")
    assert big not in problem


def test_the_largest_value_one_variable_can_hold_is_accepted(monkeypatch):
    monkeypatch.chdir(ROOT)
    value = "x" * (ENV_VARIABLE_MAX - len("BLOB="))
    s = parse("web1", {"app_user": "web", "port": 8000, "app_env": {"BLOB": value}}, ["web"])
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


def test_a_whole_env_file_too_big_is_refused(monkeypatch):
    """Each variable fits, their sum does not: checked as the .env would be rendered."""
    from types import SimpleNamespace

    from djdeploy import preflight

    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 8000}, ["web"])
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
    from djdeploy.ops import operations
    from djdeploy.ops.facts import EnvFile

    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 8000}, ["web"])
    dest = tmp_path / ".env"
    s = type(s)(**{**s.__dict__, "srv": str(tmp_path), "project": "p"})
    secrets = Secrets(TOKEN=f"a{breaker}b")
    monkeypatch.setattr(operations, "logger", type("L", (), {"info": staticmethod(lambda *a: None)}))
    with on(StandInHost({EnvFile: None})):
        (command,) = list(operations.env_file._inner(s, "templates/env.j2", secrets))
    script = command.get_raw_value().replace(f"chown root:{s.group}", f"chown {os.getuid()}:{os.getgid()}")
    script = script.replace(s.env_file, str(dest))
    process = subprocess.Popen(["bash", "-c", script], stdin=subprocess.PIPE)

    class Buffer:
        def write(self, data):
            process.stdin.write(data)

        def close(self):
            process.stdin.close()

    write_stdin(command.connector_arguments["_stdin"], Buffer())
    assert process.wait(timeout=30) == 0
    text = operations.render_env("templates/env.j2", s, secrets)
    assert dest.read_bytes() == text.encode()
    salt = f"djdeploy-env:{s.project}"
    assert hashlib_digest(dest, salt) == file_digest(text, salt)


def hashlib_digest(path: Path, salt: str) -> str:
    import hashlib

    return hashlib.sha256(salt.encode() + b"\0" + path.read_bytes()).hexdigest()


# --- A .env that did not arrive whole --------------------------------------------------------

def test_a_cut_off_env_never_replaces_the_good_one(tmp_path, monkeypatch):
    """The controller is killed while .env is sent: the host keeps the .env it had."""
    from djdeploy.config.envfile import Secrets
    from djdeploy.ops import operations
    from djdeploy.ops.facts import EnvFile

    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 8000}, ["web"])
    secrets = Secrets(**{f"S{i}": f"secret-{i}-" + "v" * 200 for i in range(20)})
    monkeypatch.setattr(operations, "logger", type("L", (), {"info": staticmethod(lambda *a: None)}))
    with on(StandInHost({EnvFile: None})):
        (command,) = list(operations.env_file._inner(s, "templates/env.j2", secrets))
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
        assert not list(tmp_path.glob(".env.*"))  # no half file left beside it
    result = subprocess.run(["bash", "-c", script], input=sent, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and dest.read_text() == sent.split("\n", 1)[1]


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


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_a_failed_start_names_the_program_that_holds_the_port():
    """release.sh's message when the app cannot start: the port's holder, by name and pid."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    function = re.search(r"^port_holder\(\) \{.*?^\}", (ROOT / "files" / "release.sh").read_text(), re.S | re.M)
    try:
        said = subprocess.run(["bash", "-c", function.group(0) + "\nport_holder"], env=dict(os.environ, PORT=str(port)),
                              capture_output=True, text=True, timeout=30).stdout
    finally:
        holder.close()
    name = Path("/proc/self/comm").read_text().strip()  # what ss shows: this process
    assert said == (f"; port {port} is held by {name} (pid {os.getpid()}): stop it, "
                    "or give the app another port (port in data)\n")
    said = subprocess.run(["bash", "-c", function.group(0) + "\nport_holder"], env=dict(os.environ, PORT=str(port)),
                          capture_output=True, text=True, timeout=30).stdout
    assert said == ""  # nobody holds it: nothing to add


@pytest.mark.parametrize("stalls, outcome", [(1, 0), (3, 1)])
def test_a_stalled_apt_update_is_cut_and_tried_again(stalls, outcome, tmp_path, monkeypatch):
    """Seen on the fleet: a caching proxy asked by 8 hosts at once left two hosts' `apt-get
    update` waiting for ever (the deploy hung). Each try is cut after APT_UPDATE_TIMEOUT; a
    later one goes through; three stalls end in one line."""
    from djdeploy.ops import operations
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
    monkeypatch.setattr(operations, "APT_UPDATE_TIMEOUT", 1)
    with on(StandInHost({MissingPackages: ["curl"]})):
        (command,) = list(operations.debian_packages._inner(["curl"]))
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

    runs = [start("a")]
    time.sleep(0.3)
    runs.append(start("b"))
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    try:
        assert sorted(run.returncode for run in runs) == [0, 1], "\n\n".join(o[-3000:] for o in outputs)
        stopped = outputs[[run.returncode for run in runs].index(1)]
        errors = [line for line in stopped.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, stopped[-3000:]
        assert re.search(r"^error: 169\.254\.\d+\.2: deploy lock held by \S+ pid \d+ since \S+: wait for that "
                         r"deploy.*; no host was changed$", errors[0]), errors
    finally:
        assert run_pyinfra("-y").returncode == 0  # the fleet as the other tests expect it
