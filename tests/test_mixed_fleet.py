"""One run across Debian 12 (Python 3.11) and Debian 13 (Python 3.13): the local fleet
boots each from its own base image, and each host gets a wheelhouse for its Python."""

import json

import pytest

from conftest import PROJECT, results, run_pyinfra, wait_http_200

FLEET = "mixed"


@pytest.fixture(scope="module")
def mixed():
    from conftest import Fleet
    from djdeploy import fleet as fleet_tool

    state = fleet_tool.up(FLEET, 2, "bookworm,trixie", timeout=240)
    try:
        yield Fleet(state)
    finally:
        fleet_tool.down([FLEET])


def test_one_deploy_serves_debian_12_and_13_side_by_side(mixed, tmp_path):
    # An empty build cache: this run builds one wheelhouse per Python in the fleet.
    first = run_pyinfra("-y", fleet=FLEET, env={"DJDEPLOY_BUILD_CACHE": str(tmp_path / "cache")})
    assert first.returncode == 0, first.stdout[-3000:]
    assert "Building the wheelhouse for Python 3.11" in first.stdout
    assert "Building the wheelhouse for Python 3.13" in first.stdout
    seen = {}
    for host, release, python in zip(mixed.hosts, ("12", "13"), ("3.11", "3.13")):
        assert host["suite"] == ("bookworm" if release == "12" else "trixie")
        os_release = mixed.ssh(host, "cat /etc/debian_version").stdout
        assert os_release.startswith(release), os_release
        venv = mixed.ssh(host, f"/srv/{PROJECT}/current/venv/bin/python -c "
                               "'import sys; print(\"%d.%d\" % sys.version_info[:2])'").stdout.strip()
        assert venv == python
        port = 80 if host["group"] == "web" else 8080
        status, body = wait_http_200(f"http://{host['address']}:{port}/healthz", timeout=60)
        assert status == 200, body
        seen[host["machine"]] = json.loads(body)["status"]
    assert set(seen.values()) == {"ok"}
    again = run_pyinfra("-y", fleet=FLEET, env={"DJDEPLOY_BUILD_CACHE": str(tmp_path / "cache")})
    assert results(again.stdout)["Grand total"]["changed"] == 0
