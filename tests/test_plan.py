"""The plan of operations per host, with pyinfra's @fake connector (no servers)."""

from pathlib import Path

import pytest

from conftest import plan_deploy

ROOT = Path(__file__).resolve().parent.parent
RECIPE = [
    "Debian packages", "App group", "App user", "Project folder", "Front's passage", "Releases folder",
    "Shared folder", "Data folder", "Uploads folder", "Socket folder", "Front's passage to the socket", "Wheelhouse", "Virtualenv", "Files a stopped run left", ".env",
    "Secret key", "Shared secret key", "run script", "manage script", "process script",
    "Django folder", "Django settings", "WSGI entry", "gunicorn settings",
    "Release tool", "Release step sandbox", "Release", "Migrations", "Release command", "systemd unit", "systemd socket", "Reload systemd", "Process units",
    "Front unit folder", "Front unit", "Front folder", "Front tool", "Front sites", "Front Caddyfile", "Front site", "ACME CA root",
    "Front certificate", "Listening socket", "First switch, together",
    "Enable and start the app",
    "The app serves the release",
    "Front door restarted", "Front door reloaded", "Front door running", "Processes",
    "Scheduled jobs", "Old releases",
]
# A host that serves a release switches in its batch instead (deploy.py).
REDEPLOY = ["Switch to the release" if name == "First switch, together" else name for name in RECIPE]
FAKE_HOSTS = ("@fake/web-1", "@fake/web-2", "@fake/staging-1")
# What the fake hosts answer once they serve a release (the Deployment fact's command first:
# pyinfra's @fake answers the first matching text).
SERVED = {"stat -c 'stat=%n %N' current": ["stat=current 'current' -> 'releases/aaa111'", "releases:", "aaa111"],
          "python3 --version": ["Python 3.11.2", "x86_64"]}


@pytest.fixture(scope="module")
def plan():
    """{host name: [(operation name, [commands])]} for a first deploy to three fake hosts."""
    state, planned, _ = plan_deploy("tests/fake_inventory.py", cli=False)
    planned["_parallel"] = {list(state.get_op_meta(h).names)[0]: state.get_op_meta(h).global_arguments["_parallel"]
                            for h in state.get_op_order()}
    return planned


def test_operations_follow_the_recipe_in_order(plan):
    for host, ops in plan.items():
        if host == "_parallel":
            continue
        assert [name for name, _ in ops] == RECIPE, host
    # Only socket-mode hosts (web) get a socket unit; staging keeps the seed's unit.
    assert dict(plan["@fake/web-1"])["systemd socket"]
    assert dict(plan["@fake/staging-1"])["systemd socket"] == []


def test_a_stock_host_gets_what_it_lacks_and_no_venv_module(plan):
    """The fake hosts answer Python 3.11 and no package installed: one apt step, lists first;
    no python3.11-venv (the virtualenv is made without pip, and filled by the pinned pip)."""
    (command,) = dict(plan["@fake/web-1"])["Debian packages"]
    assert "apt-get -q -y -o DPkg::Lock::Timeout=300 -o Acquire::Retries=2 update" in command
    assert "install --no-install-recommends curl caddy acl" in command and "venv" not in command


def test_each_group_gets_its_own_user(plan):
    ops = dict(plan["@fake/staging-1"])
    assert ops["App user"] == ["useradd --system --no-create-home --home-dir /srv/my_awesome_project "
                               "--shell /usr/sbin/nologin --gid staging staging"]
    assert dict(plan["@fake/web-1"])["App group"] == ["groupadd --system web"]


def test_packages_come_from_the_uploaded_wheelhouse_only(plan):
    ops = dict(plan["@fake/web-1"])
    uploads = [c for c in ops["Wheelhouse"] if c.startswith("FileUploadCommand")]
    assert uploads and all(".whl" in c or "requirements-" in c for c in uploads)
    assert any("django-5.2" in c.lower() for c in uploads)
    folder, upload, unpack, install = ops["Virtualenv"]
    assert "--no-index" in install and "--find-links /srv/my_awesome_project/wheels" in install
    assert "/srv/my_awesome_project/venvs/" in install  # keyed by requirements, not by release
    # pip, pinned and checked by its sha256 on the host before it is unpacked, installs from outside.
    from djdeploy.build import installer

    assert installer.WHEEL in upload and f"= {installer.SHA256} ]" in unpack and "python3 -m zipfile -e" in unpack
    assert "python3 -m venv --without-pip" in install
    assert f"/bin/python /srv/my_awesome_project/installer/{installer.WHEEL.removesuffix('.whl')}/pip install" in install


def test_hosts_that_serve_nothing_yet_switch_together(plan):
    """A first deploy: no host serves, so the three switch at once, health-gated each."""
    assert plan["_parallel"]["First switch, together"] == 3  # pyinfra's default: every host at once
    assert "Switch to the release" not in plan["_parallel"]
    for host in ("@fake/web-1", "@fake/web-2", "@fake/staging-1"):
        (command,) = dict(plan[host])["First switch, together"]
        assert "release.sh switch" in command and "HEALTH_PATH=/healthz" in command


def test_hosts_that_serve_switch_one_batch_at_a_time():
    """Three hosts that serve a release: the switch runs one host at a time (pyinfra's
    _parallel), every host in it, after the hosts that serve nothing yet."""
    state, planned, order = plan_deploy("tests/fake_inventory.py",
                                        per_host={name: {"fake_responses": SERVED} for name in FAKE_HOSTS})
    parallel = {list(state.get_op_meta(h).names)[0]: state.get_op_meta(h).global_arguments["_parallel"]
                for h in state.get_op_order()}
    assert parallel["Switch to the release"] == 1 and "First switch, together" not in parallel
    for host in FAKE_HOSTS:
        assert [name for name, _ in planned[host]] == REDEPLOY, host
        (command,) = dict(planned[host])["Switch to the release"]
        assert "release.sh switch" in command and "HEALTH_PATH=/healthz" in command


def test_a_new_host_switches_before_the_hosts_that_serve():
    """A host added to a fleet that serves switches first, alone in its operation, so a
    release it fails stops the rolling switch before any serving host."""
    new = {"python3 --version": ["Python 3.11.2", "x86_64"]}
    state, planned, order = plan_deploy("tests/fake_inventory.py", per_host={
        "@fake/web-1": {"fake_responses": SERVED}, "@fake/web-2": {"fake_responses": new},
        "@fake/staging-1": {"fake_responses": SERVED}})
    assert order.index("First switch, together") < order.index("Switch to the release")
    assert "First switch, together" in dict(planned["@fake/web-2"])
    assert "Switch to the release" not in dict(planned["@fake/web-2"])
    assert "Switch to the release" in dict(planned["@fake/web-1"])


def test_the_release_is_checked_before_it_can_serve(plan):
    ops = dict(plan["@fake/web-1"])
    upload, prepare = ops["Release"]
    assert upload.startswith("FileUploadCommand(") and ".tar, /srv/my_awesome_project/releases/" in upload
    assert "release.sh prepare" in prepare and "CHECK_LEVEL=ERROR" in prepare


def test_operation_order_is_pyinfras_own(monkeypatch):
    """djdeploy.speed.bookkeeping gives pyinfra's line numbers (so the same order and op hashes),
    checked on every operation of a CLI-mode plan of the deploy."""
    from pyinfra.api import util as pyinfra_util

    from djdeploy.speed import bookkeeping

    seen = []

    def both(state):
        ours = bookkeeping.order_from_stack(state)
        theirs = pyinfra_util.get_operation_order_from_stack(state)
        seen.append((ours, theirs))
        return ours

    monkeypatch.setattr(bookkeeping, "install", lambda: None)
    monkeypatch.setattr(bookkeeping.OPERATION_MODULE, "get_operation_order_from_stack", both)
    plan_deploy("tests/fake_inventory.py")
    assert len(seen) > 50
    # The last number is this test's wrapper (`both`), called from two lines; the rest must match.
    assert all(ours[:-1] == theirs[:-1] and len(ours) == len(theirs) for ours, theirs in seen), \
        [s for s in seen if s[0][:-1] != s[1][:-1]][:3]


def test_global_arguments_are_pyinfras_own(monkeypatch):
    """djdeploy.speed.bookkeeping reads the global arguments (_sudo, _if, _parallel, ...) as
    pyinfra does, checked on every operation of a plan of the deploy, with host data that
    sets some of them."""
    from pyinfra.api import arguments as pyinfra_arguments

    from djdeploy.speed import bookkeeping

    seen = []

    def both(state, host, kwargs):
        theirs_kwargs = dict(kwargs)
        theirs = pyinfra_arguments.pop_global_arguments(state, host, theirs_kwargs)
        ours = bookkeeping.pop_global_arguments(state, host, kwargs)
        # Copies: pyinfra later moves some of them (_parallel, _serial, _run_once) elsewhere.
        seen.append(((dict(ours[0]), ours[1]), theirs, kwargs == theirs_kwargs))
        return ours

    monkeypatch.setattr(bookkeeping, "install", lambda: None)
    monkeypatch.setattr(bookkeeping.OPERATION_MODULE, "pop_global_arguments", both)
    plan_deploy("tests/fake_inventory.py", data={"_sudo_user": "root", "_timeout": 7},
                per_host={name: {"fake_responses": SERVED} for name in FAKE_HOSTS})
    assert len(seen) > 50
    assert all(ours == theirs and same_rest for ours, theirs, same_rest in seen), \
        [s for s in seen if s[0] != s[1] or not s[2]][:2]
    assert all(ours[0]["_timeout"] == 7 and ours[0]["_sudo_user"] == "root" for ours, _, _ in seen)
    assert any({"_if", "_parallel"} <= set(ours[1]) for ours, _, _ in seen)  # the switch passes its own


def test_no_fact_reads_the_hosts_password_hashes(monkeypatch):
    """The app's account is read by one getent lookup (facts.Account), not by pyinfra's
    `Users` fact, which server.user asks: that one prints every account's password hash
    from /etc/shadow (shown with -vvv, and kept in the fact batch's answers)."""
    from pyinfra.api.host import Host

    commands = []
    real = Host.get_fact

    def recording(self, fact, *args, **kwargs):
        given = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        commands.append(str(fact().command(*args, **given)))
        return real(self, fact, *args, **kwargs)

    monkeypatch.setattr(Host, "get_fact", recording)
    try:
        plan_deploy("tests/fake_inventory.py", cli=False)
    finally:
        assert [c for c in commands if "/etc/shadow" in c or "master.passwd" in c] == []
    assert len(commands) > 20  # the plan asked its facts through here
