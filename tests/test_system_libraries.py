"""An app whose requirements name plain psycopg (not psycopg[binary]) deploys and answers
on Debian 12 and 13: psycopg loads the host's libpq, which the deploy installs (libpq5)
with its own Debian packages. Each web host's Python has its own lock and release id."""

from __future__ import annotations

import secrets

import pytest

from conftest import PROJECT, copy_project, own_fleet, results, run_pyinfra, wait_http_200

FLEET = "syslibs"
pytestmark = pytest.mark.fleet  # its fleet is its own (not one of conftest's FLEET_FIXTURES)


@pytest.fixture(scope="module")
def libs():
    with own_fleet(FLEET, 3, "bookworm,bookworm,trixie", timeout=240, groups="db,web,web") as fleet:
        yield fleet


def test_plain_psycopg_gets_libpq_on_the_host_and_the_app_answers(libs, tmp_path):
    project = copy_project(tmp_path / "project")
    requirements = project / "app" / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("psycopg[binary]==", "psycopg=="))
    assert "psycopg==3.3.9" in requirements.read_text().splitlines()
    env = {"DJDEPLOY_SECRET_DATABASE_PASSWORD": secrets.token_urlsafe(24),
           "DJDEPLOY_BUILD_CACHE": str(tmp_path / "cache")}

    first = run_pyinfra("-y", fleet=FLEET, cwd=project, env=env)
    failed = [line for line in first.stdout.splitlines() if "release" in line.lower() or "Error" in line or "]     " in line]
    assert first.returncode == 0, "\n".join(failed)[-4000:] or first.stdout[-4000:]
    ids = {}
    for host in libs.by_group("web"):
        status, body = wait_http_200(f"http://{host['address']}/healthz")  # reads PostgreSQL through psycopg
        assert status == 200, body
        assert libs.ssh(host, "dpkg-query -W -f='${Status}' libpq5").stdout == "install ok installed"
        venv = libs.ssh(host, f"readlink /srv/{PROJECT}/current/venv").stdout.strip()
        impl = libs.ssh(host, f"cd /srv/{PROJECT}/current && venv/bin/python -c "
                              "'import psycopg; print(psycopg.pq.__impl__)'").stdout.strip()
        assert impl == "python", impl  # the pure-Python psycopg, on the host's libpq
        assert not libs.ssh(host, f"ls /srv/{PROJECT}/current/venv/lib/*/site-packages | grep -i psycopg_binary",
                            check=False).stdout
        ids[host["address"]] = (libs.ssh(host, f"basename $(readlink /srv/{PROJECT}/current)").stdout.strip(), venv)
    # Debian 12 (3.11) and Debian 13 (3.13): a lock, a virtualenv and a release id each.
    (id12, venv12), (id13, venv13) = [ids[h["address"]] for h in libs.by_group("web")]
    assert venv12.endswith("-py311") and venv13.endswith("-py313"), ids
    assert id12 != id13, ids

    again = run_pyinfra("-y", fleet=FLEET, cwd=project, env=env)
    assert again.returncode == 0, again.stdout[-4000:]
    assert results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-3000:]
