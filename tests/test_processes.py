"""Process types beside the web, on a fleet of its own: a db host (PostgreSQL), a web host
and a worker host (group_data/worker.py: the site, and 2 instances of the task queue's
worker, `manage.py db_worker` of django-tasks-db in the sample app). A job enqueued by an
HTTP request on the web host runs on the worker host; jobs in flight through a redeploy
and a rollback each run exactly once; scaling 2 -> 1 -> 2; the units' sandbox; status.py
and logs.py show every process; a no-op is one command per host."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import PROJECT, ROOT, Runs, app_version, own_fleet, results, wait_http_200

pytestmark = pytest.mark.fleet

FLEET = "proctest"
WORKERS = [f"{PROJECT}-worker@1.service", f"{PROJECT}-worker@2.service"]


@pytest.fixture(scope="module")
def procs():
    with own_fleet(FLEET, 3, "bookworm", timeout=240, groups="db,web,worker") as fleet:
        yield fleet


@pytest.fixture(scope="module")
def run(procs):
    return Runs(secrets.token_urlsafe(24), FLEET)


@pytest.fixture(scope="module")
def deployed(procs, run):
    first = run("-y")
    assert first.returncode == 0, first.stdout[-4000:]
    return first


def web(procs):
    return procs.by_group("web")[0]


def worker(procs):
    return procs.by_group("worker")[0]


def enqueue(host: dict, prefix: str, count: int, seconds: float = 0.0) -> list[str]:
    data = urllib.parse.urlencode({"prefix": prefix, "count": count, "seconds": seconds}).encode()
    with urllib.request.urlopen(f"http://{host['address']}/jobs", data=data, timeout=30) as response:
        assert response.status == 201
        return json.loads(response.read())["enqueued"]


def runs_of(host: dict, prefix: str) -> dict:
    status, body = wait_http_200(f"http://{host['address']}/jobs?prefix={prefix}", timeout=60)
    assert status == 200, body
    return json.loads(body)


def wait_done(host: dict, prefix: str, keys: list[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen = runs_of(host, prefix)
    # Each job records its run as it starts: done is every key recorded and none still running.
    while ((set(seen["runs"]) != set(keys) or {"RUNNING", "READY"} & set(seen.get("statuses", {})))
           and time.monotonic() < deadline):
        time.sleep(1)
        seen = runs_of(host, prefix)
    return seen


def current(procs, host) -> str:
    return procs.ssh(host, f"basename $(readlink /srv/{PROJECT}/current)").stdout.strip()


def states(procs, host) -> list[str]:
    return procs.ssh(host, "systemctl is-active " + " ".join(WORKERS), check=False).stdout.split()


def test_workers_run_where_their_group_says_as_the_app_user_in_a_sandbox(procs, deployed):
    assert states(procs, worker(procs)) == ["active", "active"]
    assert procs.ssh(web(procs), f"ls /etc/systemd/system | grep -c '^{PROJECT}-worker' || true").stdout.strip() == "0"
    for unit in WORKERS:
        pid = procs.ssh(worker(procs), f"systemctl show -P MainPID {unit}").stdout.strip()
        assert procs.ssh(worker(procs), f"ps -o user= -p {pid}").stdout.strip() == "web"
        release = procs.ssh(worker(procs), f"readlink /proc/{pid}/cwd").stdout.strip()
        assert release == f"/srv/{PROJECT}/releases/{current(procs, worker(procs))}"
        score = procs.ssh(worker(procs), f"systemd-analyze security {unit} | tail -n 1").stdout
        exposure = float(re.search(r"level for \S+: (\d+\.\d+)", score).group(1))
        print(f"\n{unit}: exposure {exposure}")
        assert exposure <= 2.0


def test_a_worker_only_host_runs_its_processes_and_serves_nothing(procs, deployed):
    """The worker group is worker-only (web = False in group_data/worker.py): the project's
    processes, no gunicorn, no front, nothing listening on 80 or 443; its switch restarts
    the workers in the new release and waits for them to stay up instead of a health check."""
    host = worker(procs)
    assert states(procs, host) == ["active", "active"]
    listening = procs.ssh(host, "ss -Hltn").stdout
    assert not re.search(r":(80|443)\s", listening), listening
    assert procs.ssh(host, f"systemctl is-active caddy {PROJECT}.service {PROJECT}.socket; "
                           f"test -e /etc/systemd/system/{PROJECT}.service; echo $?",
                     check=False).stdout.split() == ["inactive", "inactive", "inactive", "1"]
    log = procs.ssh(host, f"cat /srv/{PROJECT}/revisions.log").stdout
    assert re.search(rf"^\S+ {current(procs, host)} .* switched", log, re.M), log
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{host['address']}/", timeout=5)


def test_a_job_enqueued_by_http_on_the_web_host_runs_on_the_worker_host(procs, deployed):
    keys = enqueue(web(procs), "http", 5)
    done = wait_done(web(procs), "http", keys)
    hostname = procs.ssh(worker(procs), "hostname").stdout.strip()
    assert {key: [r["host"] for r in rows] for key, rows in done["runs"].items()} == {k: [hostname] for k in keys}
    assert done["statuses"] == {"SUCCESSFUL": 5}


class Enqueuing:
    """Jobs enqueued through the web host all along a `with` block: 2 of 0.3 s every 0.5 s."""

    def __init__(self, host: dict, prefix: str):
        self.host, self.prefix, self.keys = host, prefix, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.enqueue)

    def enqueue(self):
        batch = 0
        while not self.stop.is_set():
            try:
                self.keys += enqueue(self.host, f"{self.prefix}{batch}", 2, seconds=0.3)
            except OSError:
                pass  # not enqueued, not counted
            batch += 1
            self.stop.wait(0.5)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(60)
        return False


@pytest.mark.parametrize("how", ["redeploy", "rollback"])
def test_jobs_in_flight_through_a_switch_each_run_exactly_once(procs, deployed, run, tmp_path, how):
    """Jobs enqueued all through a redeploy of new code (or a rollback): the workers stop at
    the switch once the job they run is done (SIGTERM, db_worker's warm shutdown) and go on
    in the new release. Each job runs once, none is lost, each in the old or new release."""
    if how == "redeploy":
        switch = lambda: run("-y", cwd=app_version(tmp_path / "p", "queued"))  # noqa: E731
    else:
        switch = lambda: run("-y", deploy="rollback.py")  # noqa: E731
    before = current(procs, worker(procs))
    with Enqueuing(web(procs), how) as enqueued:
        time.sleep(2)
        switched = switch()
        time.sleep(2)
    assert switched.returncode == 0, switched.stdout[-3000:]
    after = current(procs, worker(procs))
    assert after != before
    keys = enqueued.keys
    done = wait_done(web(procs), how, keys)
    counts = {key: len(done["runs"].get(key, [])) for key in keys}
    releases = [r["release"] for key in keys for r in done["runs"].get(key, [])]
    print(f"\n{how} with jobs enqueued all along: {len(keys)} jobs, {sum(counts.values())} runs, "
          f"{releases.count(before)} in {before}, {releases.count(after)} in {after}")
    assert len(keys) >= 20 and counts == {key: 1 for key in keys}, counts
    assert done["statuses"] == {"SUCCESSFUL": len(keys)}
    assert set(releases) == {before, after}  # jobs ran on both sides of the switch, in no other release
    assert states(procs, worker(procs)) == ["active", "active"]


def test_scaling_two_workers_to_one_and_back(procs, deployed, run):
    """2 -> 1 -> 2 on the worker host; another project's worker whose name starts like ours
    (my_awesome_project-x) is left alone."""
    other = f"{PROJECT}-x-worker"
    procs.ssh(worker(procs), f"printf '[Unit]\\nX-Djdeploy-Project={PROJECT}-x\\n[Service]\\nExecStart=/bin/sleep infinity"
                             f"\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/{other}@.service; "
                             f"systemctl daemon-reload; systemctl enable --now {other}@1.service")
    one = run("-y", "--data", 'processes={"worker": {"command": "python manage.py db_worker --no-startup-delay", '
                              '"count": 1, "stop_timeout": 60}}', "--limit", worker(procs)["address"])
    assert one.returncode == 0, one.stdout[-3000:]
    assert states(procs, worker(procs)) == ["active", "inactive"]
    assert procs.ssh(worker(procs), f"systemctl is-enabled {WORKERS[1]}", check=False).stdout.strip() == "disabled"
    keys = enqueue(web(procs), "scaled", 3)
    assert set(wait_done(web(procs), "scaled", keys)["runs"]) == set(keys)  # one worker still works
    two = run("-y", "--limit", worker(procs)["address"])
    assert two.returncode == 0, two.stdout[-3000:]
    assert states(procs, worker(procs)) == ["active", "active"]
    assert results(two.stdout)["Processes"]["changed"] == 1
    assert procs.ssh(worker(procs), f"systemctl is-active {other}@1.service; systemctl is-enabled {other}@1.service; "
                                    f"systemctl disable --now {other}@1.service; rm /etc/systemd/system/{other}@.service; "
                                    "systemctl daemon-reload").stdout.split() == ["active", "enabled"]


def test_status_and_logs_show_every_process(procs, deployed, run):
    status = run("-y", deploy="status.py")
    assert status.returncode == 0, status.stdout[-3000:]
    line = next(line for line in status.stdout.splitlines() if f"{worker(procs)['address']}:" in line
                and "current=" in line)
    assert re.search(r"processes=worker@1:active\([0-9TZ:-]+,restarts 0\),worker@2:active", line), line
    assert " unit=none health=none " in line, line  # worker-only: no web unit
    logs = subprocess.run([sys.executable, "logs.py", "--since", "-30min"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "DJDEPLOY_FLEET": FLEET})
    assert logs.returncode == 0, logs.stderr
    for host, unit in [(web(procs), f"{PROJECT}.service"), *((worker(procs), unit) for unit in WORKERS)]:
        assert re.search(rf"^\[{re.escape(host['address'])}\] \S+ {re.escape(unit)}: ", logs.stdout, re.M), \
            (unit, logs.stdout[-2000:])


def test_a_no_op_with_workers_and_a_timer_is_one_command_per_host(procs, deployed, run):
    """The app has a timer too (app/djdeploy.toml: finished jobs pruned nightly), on one host."""
    timer = f"{PROJECT}-job-prune-tasks.timer"
    active = [h["machine"] for h in (web(procs), worker(procs))
              if procs.ssh(h, f"systemctl is-active {timer}", check=False).stdout.strip() == "active"]
    assert len(active) == 1, active
    run("-y")  # the facts this fleet asks, learnt
    again = run("-y", env={"DJDEPLOY_COUNT_COMMANDS": "1"})
    assert results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-3000:]
    counts = dict(re.findall(r"remote commands: (\S+) (\d+)", again.stdout))
    print(f"\nno-op with workers, remote commands per host: {counts}")
    assert counts and set(counts.values()) == {"1"}, counts


def test_a_procfile_release_line_runs_once_per_deploy_before_the_switch(procs, deployed, run, tmp_path):
    """The app's Procfile: its release line runs once per deploy (on one of the two app
    hosts), in the new release before it serves; its worker line gives the worker's command."""
    project = app_version(tmp_path / "p", "procfile")
    (project / "app" / "Procfile").write_text(
        "web: gunicorn project.wsgi\n"
        "worker: python manage.py db_worker --no-startup-delay\n"
        "release: python manage.py shell -c \"from notes.models import Note; "
        "import os; Note.objects.create(text='released ' + os.path.basename(os.environ['DJDEPLOY_RELEASE']), "
        "written_by='release')\"\n")
    released = run("-y", cwd=project)
    assert released.returncode == 0, released.stdout[-3000:]
    assert results(released.stdout)["Release command"]["changed"] == 1
    new = current(procs, web(procs))
    status, body = wait_http_200(f"http://{web(procs)['address']}/notes")
    texts = [n["text"] for n in json.loads(body)["notes"]]
    assert texts.count(f"released {new}") == 1, texts
    log = procs.ssh(web(procs), f"cat /srv/{PROJECT}/revisions.log").stdout
    ran = re.search(rf"^\S+ {new} .* ran the Procfile's release command$", log, re.M)
    switched = re.search(rf"^\S+ {new} .* switched \(from ", log, re.M)
    assert ran and switched and ran.start() < switched.start(), log
    again = run("-y", cwd=project)
    assert results(again.stdout)["Grand total"]["changed"] == 0  # once per release, not per run
    assert run("-y").returncode == 0  # back to the project as the other tests have it


def test_a_release_whose_worker_cannot_start_is_reverted_with_one_line(procs, deployed, run, tmp_path):
    """Before: the deploy said done while the new release's worker exited at start and
    systemd started it again every 2 s. Now each instance must stay up a few seconds after
    the switch, or the release goes back as a failed health check does, naming the unit."""
    before = current(procs, worker(procs))
    project = app_version(tmp_path / "p", "worker-broken")
    app_file = project / "app" / "djdeploy.toml"
    app_file.write_text(app_file.read_text().replace("db_worker --no-startup-delay", "no_such_worker_command"))
    broken = run("-y", cwd=project)
    assert broken.returncode != 0
    errors = [line for line in broken.stdout.splitlines() if "did not stay up" in line]
    assert errors and re.search(rf"{re.escape(PROJECT)}-worker@[12]\.service did not stay up \(.*reverted to {before}, "
                                r"which serves again", errors[0]), broken.stdout[-3000:]
    assert "no_such_worker_command" in errors[0]  # what it said, from its journal
    assert current(procs, worker(procs)) == before
    time.sleep(3)  # the old release's workers, restarted: they stay up
    assert states(procs, worker(procs)) == ["active", "active"]
    keys = enqueue(web(procs), "reverted", 2)
    assert set(wait_done(web(procs), "reverted", keys)["runs"]) == set(keys)
    again = run("-y")  # the project as the other tests have it: nothing to change on the worker host
    assert again.returncode == 0, again.stdout[-3000:]


def test_a_run_goes_on_without_a_host_that_is_down_only_when_told_and_the_next_run_brings_it_back(
        procs, deployed, run, tmp_path):
    """The worker host loses its power. A deploy stops with one line naming it and how to
    go on without it; told so (without = [host]), it deploys the others and says it went
    on without that host. Once the host is back (its own disk, the old release), the next
    run brings it to the fleet's release, and its workers take jobs again."""
    from fleet.hosts import poweroff, poweron

    host, number = worker(procs), procs.hosts.index(worker(procs)) + 1
    project = app_version(tmp_path / "p", "while-one-is-down")
    poweroff(FLEET, number)
    try:
        stopped = run("-y", cwd=project)
        assert stopped.returncode != 0
        errors = [line for line in stopped.stdout.splitlines() if line.startswith("error: ")]
        assert errors == [f"error: cannot reach {host['address']} over SSH (reason above): check its address, port, "
                          f"user and key; or, if it is down for now, go on without it: --data without='[\"{host['address']}\"]'; "
                          "no host was changed"], stopped.stdout[-3000:]
        went_on = run("-y", "--data", f'without=["{host["address"]}"]', cwd=project)
        assert went_on.returncode == 0, went_on.stdout[-3000:]
        assert f"warning: going on without {host['address']}: it does not answer SSH" in went_on.stdout
        new = current(procs, web(procs))
    finally:
        poweron(FLEET, number)
    assert current(procs, host) != new  # the release it had when it went down
    back = run("-y", cwd=project)
    assert back.returncode == 0, back.stdout[-3000:]
    assert current(procs, host) == new
    keys = enqueue(web(procs), "back", 2)
    assert set(wait_done(web(procs), "back", keys)["runs"]) == set(keys)
    assert run("-y").returncode == 0  # the project as the other tests have it
