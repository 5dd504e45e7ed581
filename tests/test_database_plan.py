"""The database server's plan and the checks on its data, with pyinfra's @fake connector
(the fleet test, test_postgresql.py, proves the same on real hosts)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import plan_deploy

from djdeploy.ops.postgresql import hba_address, migration_names, scram_verifier, verifier_digest

ROOT = Path(__file__).resolve().parent.parent
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
PASSWORD = "correct-horse-battery-staple-9"


def test_the_scram_verifier_is_postgresqls_format_and_the_same_every_run():
    verifier = scram_verifier(PASSWORD, "shop")
    assert re.fullmatch(r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}", verifier)
    assert scram_verifier(PASSWORD, "shop") == verifier  # a second run has nothing to change
    assert scram_verifier(PASSWORD + "x", "shop") != verifier
    assert scram_verifier(PASSWORD, "blog").split("$")[1] != verifier.split("$")[1]  # salt per role
    assert PASSWORD not in verifier and PASSWORD not in verifier_digest(verifier, "shop")


def test_pg_hba_gets_single_host_networks_for_addresses():
    assert hba_address("10.0.0.7") == "10.0.0.7/32"
    assert hba_address("fd00::7") == "fd00::7/128"
    assert hba_address("web1.internal") == "web1.internal"


def test_the_projects_migrations_are_found_by_app():
    assert migration_names(ROOT / "app") == ["jobs.0001_initial", "notes.0001_initial"]


@pytest.fixture(scope="module")
def plan():
    """{host: [(operation, [commands])]} and the global operation order, for a first deploy."""
    _, planned, order = plan_deploy("tests/fake_db_inventory.py",
                                    env={"DJDEPLOY_SECRET_DATABASE_PASSWORD": PASSWORD})
    return planned, order


def test_the_db_host_runs_postgresql_and_nothing_of_the_app(plan):
    planned, _ = plan
    names = [name for name, _ in planned["@fake/db-1"]]
    assert names and all(name.startswith("PostgreSQL for the web hosts | ") for name in names)
    assert not any(name.startswith("PostgreSQL") for name, _ in planned["@fake/web-1"])


def test_the_server_is_ready_before_the_first_web_host_migrates_alone(plan):
    planned, order = plan
    server = [i for i, name in enumerate(order) if name.startswith("PostgreSQL for the web hosts")]
    assert max(server) < order.index("Migrations") < order.index("First switch, together")
    migrations = {host: dict(ops)["Migrations"] for host, ops in planned.items() if host.startswith("@fake/web")}
    assert len(migrations["@fake/web-1"]) == 1 and "release.sh migrate" in migrations["@fake/web-1"][0]
    assert migrations["@fake/web-2"] == []


def test_no_command_holds_the_password_or_its_verifier(plan):
    planned, _ = plan
    verifier = scram_verifier(PASSWORD, "my_awesome_project")
    for host, ops in planned.items():
        for name, commands in ops:
            for command in commands:
                assert PASSWORD not in command and verifier not in command, (host, name)


def deploy_with(env: dict, *args) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJDEPLOY_SECRET_")}
    environ.update(env, DJDEPLOY_SECRETS_DIR="/nonexistent")
    return subprocess.run([PYINFRA, "-y", "tests/fake_db_inventory.py", "deploy.py", *args], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("env, args, message", [
    ({}, (), "host @fake/web-1: secret DATABASE_PASSWORD not set: put it in"),
    ({"DJDEPLOY_SECRET_DATABASE_PASSWORD": "short"}, (),
     "host @fake/web-1: secret DATABASE_PASSWORD must be 16 or more printable ASCII characters"),
    ({"DJDEPLOY_SECRET_DATABASE_PASSWORD": PASSWORD, "DJDEPLOY_FAKE_DB_SERVERS": "2"}, (),
     "2 database servers (@fake/db-1, @fake/db-2): one host may set database_server = True"),
    ({"DJDEPLOY_SECRET_DATABASE_PASSWORD": PASSWORD}, ("--data", "db_name=Shop-DB"),
     "db_name = 'Shop-DB': not a valid value: lower-case letters, digits and _"),
], ids=["no password", "short password", "two servers", "bad database name"])
def test_bad_database_data_stops_the_run_with_one_line(env, args, message):
    result = deploy_with(env, *args)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert any(message in line for line in errors), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "--> Starting operation" not in result.stdout


def test_postgresql_without_a_server_is_refused(monkeypatch):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJDEPLOY_SECRET_")}
    result = subprocess.run([PYINFRA, "-y", "tests/fake_inventory.py", "deploy.py", "--data", "database=postgresql"],
                            cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert 'host @fake/web-1: database = "postgresql" but no host is a database server' in result.stderr


def test_only_web_hosts_are_drained_on_the_balancer_as_they_switch():
    """The balancer knows the web hosts alone: a worker-only host switches without asking it
    (balancer.sh would answer "No such server" and fail the host)."""
    _, planned, _ = plan_deploy("tests/fake_site_inventory.py", env={"DJDEPLOY_SECRET_DATABASE_PASSWORD": PASSWORD})
    switches = {host: dict(ops)["First switch, together"] for host, ops in planned.items()
                if "First switch, together" in dict(ops)}
    assert set(switches) == {"@fake/web-1", "@fake/web-2", "@fake/worker-1"}, set(switches)
    for host, commands in switches.items():
        drained = [c for c in commands if "_on_balancers" in c]
        assert len(drained) == (2 if host.startswith("@fake/web") else 0), (host, commands)  # drain, ready
