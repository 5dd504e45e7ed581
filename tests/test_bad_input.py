"""Bad input gets one clear line, a non-zero exit, and no host changes: a catalogue of
broken data, inventories, templates, secrets and SSH settings, each run against the fleet."""

import json

import pytest

from conftest import ROOT, run_pyinfra


def servers_file(tmp_path, fleet, body, user="root", ssh_extra=""):
    path = tmp_path / "servers.toml"
    path.write_text(
        f'[ssh]\nuser = "{user}"\nkey = "{fleet.state["key"]}"\n'
        'known_hosts_file = "/dev/null"\nstrict_host_key_checking = "off"\n' + ssh_extra + body)
    return str(path)


def error_lines(result):
    return [line for line in result.stdout.splitlines() if line.startswith("error: ")]


def assert_one_clear_failure(result, *phrases, lines=1):
    """Exit 1, `lines` lines starting "error: " (one per problem and host), each holding
    every phrase, and no traceback."""
    assert result.returncode == 1, result.stdout[-3000:]
    if lines == 0:  # pyinfra's own message, not ours
        assert all(phrase in result.stdout for phrase in phrases), result.stdout[-3000:]
        assert "Traceback" not in result.stdout
        return
    errors = error_lines(result)
    assert len(errors) == lines, errors
    for error in errors:
        for phrase in phrases:
            assert phrase in error, error
    assert "Traceback" not in result.stdout


@pytest.fixture
def fingerprints(fleet, deployed):
    """Each host's managed files, before the test; compare after."""
    return lambda: {h["machine"]: fleet.fingerprint(h) for h in fleet.hosts}


def test_unknown_group_in_the_inventory(tmp_path, fleet, fingerprints):
    before = fingerprints()
    path = servers_file(tmp_path, fleet, f'[webb]\nhosts = ["{fleet.hosts[0]["address"]}"]\n')
    result = run_pyinfra("-y", env={"DJDEPLOY_SERVERS": path})
    assert_one_clear_failure(result, "unknown group [webb]", "the groups are backup, db, files, lb, staging, web, worker")
    assert fingerprints() == before


def test_missing_required_data_key(fleet, fingerprints, project_copy):
    before = fingerprints()
    staging = project_copy / "group_data" / "staging.py"
    staging.write_text(staging.read_text().replace("port = 8080", ""))
    # A change every host would get if the run went on: it must not.
    (project_copy / "group_data" / "all.py").write_text(
        (project_copy / "group_data" / "all.py").read_text().replace("workers = 2", "workers = 3"))
    result = run_pyinfra("-y", cwd=project_copy)
    host = fleet.by_group("staging")[0]["address"]
    assert_one_clear_failure(result, f"host {host} (group staging)", "missing required data key 'port'",
                             "group_data/<group>.py")
    assert fingerprints() == before


def test_unreachable_host_stops_the_whole_run(tmp_path, fleet, fingerprints):
    before = fingerprints()
    reachable = fleet.hosts[0]
    # The .3 address on a fleet host's own link: nobody answers, and nothing leaves the machine.
    unreachable = f"169.254.{reachable['index']}.3"
    path = servers_file(tmp_path, fleet, f'[web]\nhosts = ["{reachable["address"]}", "{unreachable}"]\n')
    result = run_pyinfra("-y", "--data", "workers=3", env={"DJDEPLOY_SERVERS": path}, timeout=120)
    assert_one_clear_failure(result, f"cannot reach {unreachable} over SSH", "no host was changed")
    assert fingerprints() == before


def test_missing_ssh_key_file(tmp_path, fleet, fingerprints):
    before = fingerprints()
    path = tmp_path / "servers.toml"
    path.write_text(f'[ssh]\nkey = "{tmp_path}/no_such_key"\n[web]\nhosts = ["{fleet.hosts[0]["address"]}"]\n')
    result = run_pyinfra("-y", env={"DJDEPLOY_SERVERS": str(path)})
    assert_one_clear_failure(result, f"key {tmp_path}/no_such_key does not exist", "ssh-keygen")
    assert fingerprints() == before


def test_no_servers_and_no_fleet_says_what_to_do(tmp_path):
    result = run_pyinfra("-y", fleet="no-such-fleet", env={"DJDEPLOY_SERVERS": str(tmp_path / "absent.toml")})
    assert_one_clear_failure(result, "absent.toml: no such file")
    result = run_pyinfra("-y", fleet="no-such-fleet")
    if (ROOT / "servers.toml").exists():
        pytest.skip("this checkout has a servers.toml")
    assert_one_clear_failure(result, "no servers to deploy to", "make fleet-up")


def test_run_from_outside_the_project_folder_says_where(tmp_path):
    import os
    import subprocess

    from conftest import PYINFRA

    result = subprocess.run([PYINFRA, "-y", str(ROOT / "inventory.py"), str(ROOT / "deploy.py")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, DJDEPLOY_FLEET="no-such-fleet"), timeout=120)
    assert_one_clear_failure(result, "run pyinfra from the project folder", f"cd {ROOT}")


def test_no_terminal_and_no_yes_says_pass_y():
    """pyinfra would ask "execute?" and, with nothing to answer, end in a traceback."""
    result = run_pyinfra(fleet="no-such-fleet")  # stdin is not a terminal
    assert_one_clear_failure(result, "no terminal to answer pyinfra's confirmation", "pass -y")
    assert "no terminal" not in run_pyinfra("--dry", fleet="no-such-fleet").stdout  # a dry run asks nothing


def edit(project, name, old, new):
    path = project / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


def edited(name, old, new):
    """A case that edits one project file and runs with no extra arguments."""
    def how(project, tmp_path, fleet):
        edit(project, name, old, new)
        return [], {}
    return how


def with_data(*pairs):
    """A case that passes `--data key=value` for each pair."""
    return lambda project, tmp_path, fleet: ([arg for pair in pairs for arg in ("--data", pair)], {})


def secrets_folder(tmp_path, body, mode=0o600):
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "web.toml").write_text(body)
    (folder / "web.toml").chmod(mode)
    return str(folder)


# name: (how to break it, error phrases, error lines with the 3-host fleet: 2 web, 1 staging)
# Each `how` gets (project copy, tmp_path, fleet) and returns (pyinfra args, environment).
CATALOGUE = {
    "typo in a group_data key": (
        edited("group_data/web.py", "port = 80", "prot = 80\nport = 80"),
        ["unknown data key 'prot': did you mean 'port'?", "(group web)"], 2),
    "port out of range": (
        with_data("port=70000"),
        ["port = 70000: input should be less than or equal to 65535"], 3),
    "port written as text in group_data": (
        edited("group_data/staging.py", "port = 8080", 'port = "8080"'),
        ["(group staging): port = '8080': input should be a valid integer"], 1),
    "port is the SSH port": (
        with_data("port=22"), ["port = 22: the host's SSH port"], 3),
    "app user root": (
        with_data("app_user=root"), ["app_user = 'root': must be a lower-case system name, not root"], 3),
    "project name unsafe for a unit": (
        with_data("project=my app"), ["project = 'my app': not a valid value"], 3),
    "srv outside /srv": (
        with_data("srv=/opt/apps"), ["srv = '/opt/apps': outside /srv"], 3),
    "relative srv": (
        with_data("srv=apps"), ["srv = 'apps': not an absolute path"], 3),
    "listen mode misspelt": (
        edited("group_data/staging.py", 'listen = "ambient"', 'listen = "ambiant"'),
        ["listen = 'ambiant': input should be 'socket' or 'ambient'"], 1),
    "app_env not a dict": (
        with_data("app_env=DEBUG"), ["app_env = 'DEBUG': input should be a valid dictionary"], 3),
    "a value with a line break": (
        with_data("app_env=" + json.dumps({"GREETING": "hello\nworld"})),
        ["app_env: GREETING holds a line break"], 3),
    "two problems at once": (
        with_data("workers=0", "check_level=LOUD"),
        ["host "], 6),
    "template refers to a missing setting": (
        edited("templates/run.j2", "{{ s.workers }}", "{{ s.worker_count }}"),
        ["templates/run.j2 line", "worker_count", "fix the template"], 3),
    "template syntax error": (
        edited("templates/app.service.j2", "{% else -%}", "{% els -%}"),
        ["templates/app.service.j2 line", "fix the template"], 1),
    "required secret not set": (
        lambda p, t, f: (["--data", 'required_secrets=["API_TOKEN"]'], {"DJDEPLOY_SECRETS_DIR": str(t / "none")}),
        ["secret API_TOKEN not set", "export DJDEPLOY_SECRET_API_TOKEN"], 3),
    "secret with a line break": (
        lambda p, t, f: ([], {"DJDEPLOY_SECRETS_DIR": secrets_folder(t, 'API_TOKEN = "abc\\ndef"\n')}),
        ["web.toml: API_TOKEN holds a line break"], 1),
    "secrets file readable by others": (
        lambda p, t, f: ([], {"DJDEPLOY_SECRETS_DIR": secrets_folder(t, 'API_TOKEN = "x"\n', 0o644)}),
        ["web.toml: secrets file is readable by others (mode 0644)", "chmod 600"], 1),
    "secrets file not TOML": (
        lambda p, t, f: ([], {"DJDEPLOY_SECRETS_DIR": secrets_folder(t, "API_TOKEN: x\n")}),
        ["web.toml: not valid TOML"], 1),
    "secret from the environment with a control character": (
        lambda p, t, f: ([], {"DJDEPLOY_SECRET_API_TOKEN": "a\x07b"}),
        ["environment variable DJDEPLOY_SECRET_API_TOKEN: API_TOKEN holds a control character"], 1),
    "secret that would replace a deploy variable": (
        lambda p, t, f: ([], {"DJDEPLOY_SECRET_PYTHONPATH": "/tmp"}),
        ["secret PYTHONPATH (DJDEPLOY_SECRET_PYTHONPATH) would replace a variable the deploy sets"], 3),
    "SSH user that does not exist": (
        lambda p, t, f: ([], {"DJDEPLOY_SERVERS": servers_file(
            t, f, f'[web]\nhosts = ["{f.hosts[0]["address"]}"]\n', user="nosuchuser")}),
        # No host answers, so pyinfra stops before the deploy file runs, with its own line.
        ["Authentication error (username=nosuchuser", "No hosts remaining"], 0),
    "a requirement that does not exist": (
        edited("app/requirements.txt", "gunicorn", "djdeploy-no-such-package-4f1c\ngunicorn"),
        ["djdeploy-no-such-package-4f1c: no such package on the package index", "no host was changed"], 1),
    "a production setting misspelt in keep_app_settings": (
        with_data('keep_app_settings=["DEBUGG"]'), ["keep_app_settings.0 = 'DEBUGG'"], 3),
    "unknown [ssh] setting": (
        lambda p, t, f: ([], {"DJDEPLOY_SERVERS": servers_file(
            t, f, f'[web]\nhosts = ["{f.hosts[0]["address"]}"]\n', ssh_extra="prot = 22\n")}),
        ["unknown [ssh] key 'prot'"], 1),
}


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_catalogue_of_broken_configurations(case, tmp_path, fleet, fingerprints, project_copy):
    how, phrases, lines = CATALOGUE[case]
    before = fingerprints()
    args, env = how(project_copy, tmp_path, fleet)
    result = run_pyinfra("-y", *args, cwd=project_copy, env=env, timeout=120)
    assert_one_clear_failure(result, *phrases, lines=lines)
    assert fingerprints() == before

