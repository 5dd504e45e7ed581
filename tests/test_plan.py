"""The plan of operations per host, with pyinfra's @fake connector (no servers)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPE = [
    "App group", "App user", "Project folder", "Data folder", "Wheelhouse", "Virtualenv",
    "Requirements", "App code", ".env", "Secret key", "run script", "gunicorn settings",
    "Database migrations", "systemd unit", "Reload systemd", "Restart the app",
    "Enable and start the app",
]


@pytest.fixture(scope="module")
def plan():
    """{host name: [(operation name, [commands])]} for a first deploy to three fake hosts."""
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_cli.inventory import make_inventory
    from pyinfra_cli.util import load_deploy_file

    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    state = State()
    ctx_state.set(state)
    inventory = make_inventory("tests/fake_inventory.py", cwd=str(ROOT))
    state.init(inventory, Config())
    connect_all(state)
    load_deploy_file(state, "deploy.py")
    planned = {}
    for host in inventory:
        ctx_host.set(host)
        planned[host.name] = [
            (list(state.get_op_meta(op_hash).names)[0],
             [str(c) for c in state.get_op_data_for_host(host, op_hash).command_generator()])
            for op_hash in state.get_op_order()
        ]
    mp.undo()
    return planned


def test_operations_follow_the_recipe_in_order(plan):
    for host, ops in plan.items():
        assert [name for name, _ in ops] == RECIPE, host


def test_each_group_gets_its_own_user(plan):
    ops = dict(plan["@fake/staging-1"])
    assert ops["App user"] == ["useradd -d /srv/my_awesome_project -s /usr/sbin/nologin "
                               "-g staging -r -M staging"]
    assert dict(plan["@fake/web-1"])["App group"] == ["groupadd -r web"]


def test_packages_come_from_the_uploaded_wheelhouse_only(plan):
    ops = dict(plan["@fake/web-1"])
    uploads = [c for c in ops["Wheelhouse"] if c.startswith("FileUploadCommand")]
    assert uploads and all(".whl" in c or "requirements-" in c for c in uploads)
    assert any("django-5.2" in c.lower() for c in uploads)
    (install, _stamp) = ops["Requirements"]
    assert "--no-index" in install and "--find-links /srv/my_awesome_project/wheels" in install


def test_first_deploy_starts_and_enables_without_a_restart(plan):
    ops = dict(plan["@fake/web-1"])
    assert ops["Reload systemd"] == ["systemctl daemon-reload"]
    assert ops["Restart the app"] == []  # nothing is running yet on a fresh host
    assert ops["Enable and start the app"] == [
        "systemctl start my_awesome_project.service", "systemctl enable my_awesome_project.service"]
