"""Bad input gets one clear line, a non-zero exit, and no host changes."""


import pytest

from conftest import ROOT, run_pyinfra


def servers_file(tmp_path, fleet, body):
    path = tmp_path / "servers.toml"
    path.write_text(
        f'[ssh]\nuser = "root"\nkey = "{fleet.state["key"]}"\n'
        'known_hosts_file = "/dev/null"\nstrict_host_key_checking = "off"\n' + body)
    return str(path)


def error_lines(result):
    return [line for line in result.stdout.splitlines() if line.startswith("error: ")]


def assert_one_clear_failure(result, *phrases):
    assert result.returncode == 1, result.stdout[-3000:]
    errors = error_lines(result)
    assert len(errors) == 1, errors
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    assert "Traceback" not in result.stdout


@pytest.fixture
def fingerprints(fleet, deployed):
    """Each host's managed files, before the test; compare after."""
    return lambda: {h["machine"]: fleet.fingerprint(h) for h in fleet.hosts}


def test_unknown_group_in_the_inventory(tmp_path, fleet, fingerprints):
    before = fingerprints()
    path = servers_file(tmp_path, fleet, f'[webb]\nhosts = ["{fleet.hosts[0]["address"]}"]\n')
    result = run_pyinfra("-y", env={"DJDEPLOY_SERVERS": path})
    assert_one_clear_failure(result, "unknown group [webb]", "the groups are staging, web")
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
