"""Shared helpers: the test fleet (booted once per session) and pyinfra runs against it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from gevent import monkey

# pyinfra's CLI package patches the whole process for gevent when it is imported (the tests
# that plan in process import it). Under a patched `subprocess`, a long `pyinfra` run the
# same process started later leaked file descriptors ("Too many open files"), and with
# test files spread over workers (make test) any process may run both. Planning @fake
# hosts does no I/O a patch would serve: the test processes keep the plain stdlib.
monkey.patch_all = lambda *args, **kwargs: None

ROOT = Path(__file__).resolve().parent.parent
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
# The shared fleet's name: not the demo's (other addresses); under pytest-xdist (make test)
# each worker that runs its tests boots one of its own: test, test1, test2, ...
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
TEST_FLEET = os.environ.get("DJDEPLOY_TEST_FLEET", "test") + (str(_WORKER) if _WORKER else "")
PROJECT = "my_awesome_project"
PROJECT_FILES = ["deploy.py", "rollback.py", "status.py", "unlock.py", "inventory.py", "group_data",
                 "templates", "files", "app"]


def run_pyinfra(*args, fleet=TEST_FLEET, cwd=ROOT, env=None, deploy="deploy.py", timeout=600):
    """`pyinfra inventory.py <deploy> ARGS` as a user runs it; its output (both streams, as a
    user sees them) is in .stdout."""
    environ = dict(os.environ, DJDEPLOY_FLEET=fleet, **(env or {}))
    environ.pop("DJDEPLOY_SERVERS", None) if "DJDEPLOY_SERVERS" not in (env or {}) else None
    return subprocess.run([PYINFRA, "inventory.py", deploy, *args], cwd=cwd, env=environ,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def results(output: str) -> dict[str, dict[str, int]]:
    """pyinfra's own Results table: operation name -> hosts, changed, error, no_change."""
    table = output.split("--> Results:", 1)
    assert len(table) == 2, f"no Results table in pyinfra output:\n{output[-3000:]}"
    rows = {}
    for line in table[1].splitlines()[2:]:
        parts = line.split()
        if len(parts) < 5 or not all(re.fullmatch(r"\d+|-", p) for p in parts[-4:]):
            break
        numbers = [0 if p == "-" else int(p) for p in parts[-4:]]
        rows[" ".join(parts[:-4])] = dict(zip(["hosts", "changed", "error", "no_change"], numbers))
    return rows


def http_get(url: str, timeout: float = 5) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return None, str(error)


def wait_http_200(url: str, timeout: float = 90) -> tuple[int | None, str]:
    deadline = time.monotonic() + timeout
    status, body = http_get(url)
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        status, body = http_get(url)
    return status, body


def note(host: dict, text: str) -> int:
    """A row written through the sample app's /notes on `host`: its id."""
    data = urllib.parse.urlencode({"text": text}).encode()
    with urllib.request.urlopen(f"http://{host['address']}/notes", data=data, timeout=30) as response:
        assert response.status == 201
        return json.loads(response.read())["id"]


def notes(host: dict, timeout: float = 120) -> set[str]:
    """The sample app's rows as `host` serves them."""
    status, body = wait_http_200(f"http://{host['address']}/notes", timeout=timeout)
    assert status == 200, body
    return {n["text"] for n in json.loads(body)["notes"]}


def upload_file(host: dict, name: str, content: bytes) -> str:
    """A file uploaded through the sample app's /files on `host`: its URL."""
    boundary = "djdeploy-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://{host['address']}/files", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        return json.loads(response.read())["url"]


class Fleet:
    """The test fleet's hosts, reached over SSH with the fleet's key."""

    def __init__(self, state: dict):
        self.state = state
        self.hosts = state["hosts"]

    def by_group(self, group: str) -> list[dict]:
        return [h for h in self.hosts if h["group"] == group]

    def ssh(self, host: dict, command: str, check: bool = True, timeout: float = 60):
        from fleet.machine import ssh

        result = ssh(self.state, host, command, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{host['machine']}: `{command}` exited {result.returncode}: "
                                 f"{result.stderr.strip()}")
        return result

    def fingerprint(self, host: dict) -> str:
        """Everything the deploy manages on a host: paths, sizes, times, modes, owners, and
        when the app last started."""
        return self.ssh(host, "{ find /srv /etc/systemd/system -xdev -printf '%p %s %T@ %m %u %g\\n' | sort; "
                              "systemctl show -p ActiveEnterTimestampMonotonic -p MainPID -p NRestarts "
                              f"{PROJECT}.service; }} | sha256sum").stdout


@contextlib.contextmanager
def own_fleet(name: str, count: int, suite: str, timeout: float = 180, groups: str | None = None):
    """A fleet of its own for the block: booted, then removed however the block ends."""
    from fleet import hosts as fleet_tool

    state = fleet_tool.up(name, count, suite, timeout=timeout, groups=groups)
    try:
        yield Fleet(state)
    finally:
        fleet_tool.down([name])


@pytest.fixture(scope="session")
def fleet():
    """Three hosts (two web, one staging), booted once for every test that shares them."""
    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        pytest.fail("the fleet tests need root and systemd-nspawn: run `make test` as root")
    with own_fleet(TEST_FLEET, 3, "bookworm") as shared:
        yield shared


@pytest.fixture(scope="session")
def deployed(fleet):
    """The fleet after one full deploy; the first deploy's output for tests that read it."""
    started = time.monotonic()
    result = run_pyinfra("-y")
    assert result.returncode == 0, result.stdout[-4000:]
    print(f"\nfirst deploy of {len(fleet.hosts)} hosts: {time.monotonic() - started:.1f} s")
    return result


def copy_project(target: Path) -> Path:
    """A copy of the project's deploy files, to change without touching the checkout."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    return target


def app_version(target: Path, marker: str) -> Path:
    """A project copy whose home page says `marker`: new code, so a new release."""
    copy_project(target)
    views = target / "app" / "project" / "views.py"
    views.write_text(views.read_text().replace("Django behind gunicorn", f"Django {marker} behind gunicorn"))
    return target


def broken_release(target, how):
    """A copy of the project, with new code broken in one way: "import", "health" or "migration"."""
    project = app_version(target, "broken")
    app = project / "app"
    if how == "import":
        wsgi = app / "project" / "wsgi.py"
        wsgi.write_text(wsgi.read_text() + "\nraise ImportError('this release is broken on purpose')\n")
    elif how == "health":
        views = app / "project" / "views.py"
        views.write_text(views.read_text().replace(
            '    """200 when the app can reach its database, 503 when it cannot."""\n',
            '    """Broken on purpose."""\n    return JsonResponse({"status": "broken"}, status=500)\n'))
    elif how == "migration":
        broken = app / "broken"
        (broken / "migrations").mkdir(parents=True)
        (broken / "__init__.py").write_text("")
        (broken / "migrations" / "__init__.py").write_text("")
        (broken / "migrations" / "0001_initial.py").write_text(
            "from django.db import migrations\n\n\n"
            "def fail(apps, schema_editor):\n    raise RuntimeError('this migration fails on purpose')\n\n\n"
            "class Migration(migrations.Migration):\n    operations = [migrations.RunPython(fail)]\n")
        settings = app / "project" / "settings.py"
        settings.write_text(settings.read_text().replace('    "notes",\n', '    "notes",\n    "broken",\n', 1))
        assert '"broken"' in settings.read_text()
    return project


def deploy_killed_at(project, markers, *args, env=None):
    """Start a deploy (with pyinfra arguments `args`, and `env`) and SIGKILL it when its output
    has reached each of `markers` in turn (a marker ending in a line break ends a line); its output."""
    process = subprocess.Popen([PYINFRA, "-y", "inventory.py", "deploy.py", *args], cwd=project,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, DJDEPLOY_FLEET=TEST_FLEET, **(env or {})), stdin=subprocess.DEVNULL)
    seen, waiting = [], list(markers)
    deadline = time.monotonic() + 300
    for line in process.stdout:
        seen.append(line)
        if waiting and waiting[0] in line.rstrip() + "\n":
            waiting.pop(0)
        if not waiting or time.monotonic() > deadline:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "".join(seen[-30:])
    return "".join(seen)


class Runs:
    """pyinfra runs on fleet `fleet` with the database password given as a user gives it
    (DJDEPLOY_SECRET_DATABASE_PASSWORD); every output is kept, for tests that search them
    for the password (`earlier`: passwords rotated away)."""

    def __init__(self, password: str, fleet: str, backup_password: str | None = None):
        self.password, self.fleet, self.backup_password = password, fleet, backup_password
        self.earlier: list[str] = []
        self.outputs: list[tuple[str, str]] = []

    def __call__(self, *args, cwd=ROOT, deploy="deploy.py", env=None):
        environment = {"DJDEPLOY_SECRET_DATABASE_PASSWORD": self.password, **(env or {})}
        if self.backup_password:  # a fleet with a backup host (BACKUP_PASSWORD)
            environment.setdefault("DJDEPLOY_SECRET_BACKUP_PASSWORD", self.backup_password)
        result = run_pyinfra(*args, fleet=self.fleet, cwd=cwd, env=environment, deploy=deploy)
        self.outputs.append((" ".join(args) + " " + deploy, result.stdout))
        return result


@pytest.fixture
def project_copy(tmp_path):
    return copy_project(tmp_path)


@pytest.fixture
def settings(monkeypatch):
    """A web host's AppSettings from the shipped data, with one app_env value."""
    from djdeploy.config.settings import parse

    monkeypatch.chdir(ROOT)
    data = {"app_user": "web", "port": 80, "app_env": {"SENTRY_ENVIRONMENT": "production"}}
    return parse("app1.example.com", data, ["web"])


class LoadRun:
    """`python -m fleet.load` in its own process, for the length of a `with` block."""

    def __init__(self, urls, markers=(), pause=0.0):
        args = [sys.executable, "-m", "fleet.load", *urls, "--seconds", "300", "--concurrency", "4",
                "--pause", str(pause)]
        for marker in markers:
            args += ["--marker", marker]
        self.args = args
        self.result = None

    def __enter__(self):
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        time.sleep(1)  # some traffic before the change starts
        return self

    def __exit__(self, *exc):
        time.sleep(1)  # and some after it
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        self.result = json.loads(out)
        return False


def plan_deploy(inventory_file: str, cli: bool = True, env: dict | None = None, data: dict | None = None,
                per_host: dict | None = None):
    """pyinfra's plan of deploy.py for the @fake hosts of `inventory_file`, as the `pyinfra`
    command makes it (cli: operations ordered by the deploy file's lines; data: as
    --data; per_host: {host name: data set on that host, as its inventory would}): (state,
    {host: [(operation, [commands])]}, [operation names in order])."""
    import pyinfra
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_cli.inventory import make_inventory
    from pyinfra_cli.util import load_deploy_file

    mp = pytest.MonkeyPatch()
    try:
        mp.chdir(ROOT)
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        mp.setattr(pyinfra, "is_cli", cli)
        state = State()
        ctx_state.set(state)
        inventory = make_inventory(inventory_file, override_data=data, cwd=str(ROOT))
        for name, values in (per_host or {}).items():
            for key, value in values.items():
                setattr(inventory.get_host(name).data, key, value)
        state.init(inventory, Config())
        connect_all(state)
        state.set_stage(StateStage.Prepare)
        load_deploy_file(state, "deploy.py")
        order = [list(state.get_op_meta(h).names)[0] for h in state.get_op_order()]
        planned = {}
        for host in inventory:
            ctx_host.set(host)
            planned[host.name] = [
                (list(state.get_op_meta(op_hash).names)[0],
                 [str(c) for c in state.get_op_data_for_host(host, op_hash).command_generator()])
                for op_hash in state.get_op_order() if op_hash in host.op_hash_order
            ]
    finally:
        mp.undo()
    return state, planned, order


# make test spreads the test files over workers (pytest-xdist, --dist loadfile): each file
# runs on one worker (the files of one part of the shared fleet together, below), in this
# order, the longest first, so that none starts last and ends alone. Seconds per file (or
# part) in one run on this 2-core machine at three workers (`--durations=0`, d26d5ea): the
# shared fleet's parts 670 and 610, postgresql 588, corpus 486, real_apps 417, https 220,
# processes 214, system_libraries 83, build 71, every other file under 15; backups (later)
# 131 alone.
LONGEST_FIRST = ["test_postgresql", "test_adversarial", "test_releases", "test_corpus", "test_real_apps",
                 "test_https", "test_processes", "test_backups", "test_system_libraries", "test_build"]
# A test that stops what every fleet shares (the apt proxy) runs alone, after the others
# (make test's second command).
ALONE = {"test_stock_hosts_install_through_the_fleets_own_apt_proxy_and_down_leaves_nothing"}


FLEET_FIXTURES = {"fleet", "deployed", "pg"}  # a test that asks one of these runs on a fleet

# The files whose tests run on the session's shared fleet (this file's `fleet` and
# `deployed`), in two parts: make test sends each part to one worker as one unit of work
# (pytest_xdist_make_scheduler), so that at most two workers boot that fleet and give it
# its first deploy, not every worker. Collection refuses a test elsewhere that asks for it.
SHARED_FLEET_FILES = {
    "test_adversarial": 1, "test_bad_input": 1, "test_drift": 1, "test_timers": 1, "test_other_project": 1,
    "test_sudo": 1,
    "test_releases": 2, "test_secrets": 2, "test_front": 2, "test_deploy_on_fleet": 2, "test_fleet_tool": 2,
    "test_remote": 2, "test_hardening": 2, "test_units": 2,
}


def uses_shared_fleet(item) -> bool:
    defs = getattr(item, "_fixtureinfo", None)
    defs = defs.name2fixturedefs if defs else {}
    return any(name in item.fixturenames and defs.get(name) and defs[name][-1].func.__module__ == __name__
               for name in ("fleet", "deployed"))


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, but the files of each part of SHARED_FLEET_FILES are one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFleetScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            part = SHARED_FLEET_FILES.get(Path(path).stem)
            return f"the shared fleet, part {part}" if part else path

    return SharedFleetScheduling(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(session, config, items):
    """Marks each test of the fleet layer (`-m "not fleet"` leaves the fast layers) and the
    one that runs alone; then, once pytest has ordered the tests (by fixture) and kept those
    asked for, puts the longest files first, each file's tests together in pytest's order."""
    for item in items:
        callspec = getattr(item, "callspec", None)  # a parametrized argument is no fixture
        if FLEET_FIXTURES & (set(item.fixturenames) - set(callspec.params if callspec else ())):
            item.add_marker(pytest.mark.fleet)
        if item.originalname in ALONE:
            item.add_marker(pytest.mark.alone)
        if uses_shared_fleet(item) and item.module.__name__ not in SHARED_FLEET_FILES:
            raise pytest.UsageError(f"{item.nodeid} runs on the shared fleet: add {item.module.__name__} to "
                                    "SHARED_FLEET_FILES in tests/conftest.py")
    yield
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.module.__name__, index)
    items.sort(key=lambda item: (rank.get(item.module.__name__, len(rank)), first[item.module.__name__]))
