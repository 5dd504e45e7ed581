"""Releases on the fleet: zero-downtime switches, health-gated reverts, rollback, a lock,
pruning, and recovery from a killed deploy. Tests run in file order on the shared fleet.

Load runs against every host through its front door (Caddy): the socket-mode hosts (web)
and the staging host, which runs the seed's AmbientCapabilities unit (gunicorn binds its
port itself, so nothing holds it through a restart: the front tries again meanwhile).
Neither fails a request.
"""

import re
import subprocess
import time

import pytest

from conftest import (PROJECT, PYINFRA, LoadRun, TEST_FLEET, app_version, broken_release, deploy_killed_at,
                      http_get, results, run_pyinfra, wait_http_200)

MIN_REQUESTS = 100  # a load that made fewer requests proves nothing


def urls(fleet, group, path="/"):
    port = {"web": 80, "staging": 8080}[group]
    return [f"http://{h['address']}:{port}{path}" for h in fleet.by_group(group)]


def serving(fleet):
    """{machine: release id that `current` points at}."""
    return {h["machine"]: fleet.ssh(h, f"basename $(readlink /srv/{PROJECT}/current)").stdout.strip()
            for h in fleet.hosts}


def answers(fleet):
    """{machine: home page} from the controller."""
    port = {"web": 80, "staging": 8080}
    return {h["machine"]: http_get(f"http://{h['address']}:{port[h['group']]}/")[1] for h in fleet.hosts}


def assert_no_request_failed(load):
    assert load.result["requests"] >= MIN_REQUESTS, load.result
    assert load.result["failed"] == 0, load.result


def report(what, load):
    r = load.result
    print(f"\n{what}: {r['requests']} requests, {r['failed']} failed {r['failures']}, "
          f"longest gap {r['max_gap_s']} s")


@pytest.fixture(scope="module")
def versions(tmp_path_factory, deployed):
    """Project copies with new code: each is a new release."""
    base = tmp_path_factory.mktemp("versions")
    chosen = {name: app_version(base / name, name) for name in ("v2", "v3", "v4", "v5")}
    # revisions.log lines from here on are this file's (other files' tests share the fleet)
    chosen["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return chosen


def test_redeploy_under_load_fails_no_request(fleet, versions):
    before = serving(fleet)
    with LoadRun(urls(fleet, "web"), ["v2"]) as web, LoadRun(urls(fleet, "staging"), ["v2"]) as seed:
        result = run_pyinfra("-y", cwd=versions["v2"])
    assert result.returncode == 0, result.stdout[-3000:]
    rows = results(result.stdout)
    assert rows["Release"]["changed"] == 3
    assert rows["Virtualenv"]["changed"] == 0 and rows["Wheelhouse"]["changed"] == 0  # code only
    # What the batched facts said after the release changed the hosts was true
    # (djdeploy.shell.touching): the next run changes nothing.
    assert results(run_pyinfra("-y", cwd=versions["v2"]).stdout)["Grand total"]["changed"] == 0
    assert_no_request_failed(web)
    assert_no_request_failed(seed)
    assert web.result["answers"].get("v2", 0) > 0 and seed.result["answers"].get("v2", 0) > 0  # the new code answered
    report("redeploy, socket mode", web)
    report("redeploy, AmbientCapabilities mode", seed)
    after = serving(fleet)
    assert len(set(after.values())) == 1 and set(after.values()).isdisjoint(before.values())
    assert all("Django v2 behind" in page for page in answers(fleet).values())


def test_rollback_under_load_fails_no_request(fleet, versions):
    with LoadRun(urls(fleet, "web"), ["v2"]) as web, LoadRun(urls(fleet, "staging")) as seed:
        result = run_pyinfra("-y", cwd=versions["v2"], deploy="rollback.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert_no_request_failed(web)
    assert_no_request_failed(seed)
    report("rollback, socket mode", web)
    report("rollback, AmbientCapabilities mode", seed)
    assert all("Django behind" in page for page in answers(fleet).values())
    for host in fleet.hosts:
        last = fleet.ssh(host, f"tail -n 1 /srv/{PROJECT}/revisions.log").stdout
        assert "rolled back" in last


def test_rollbacks_in_quick_succession_all_succeed(fleet, versions):
    """More restarts than systemd's default start limit (5 in 10 s) allows."""
    for number in range(1, 7):  # each rollback goes to the previous release: v2, v1, v2, ...
        result = run_pyinfra("-y", cwd=versions["v2"], deploy="rollback.py")
        assert result.returncode == 0, result.stdout[-3000:]
        expected = "Django v2 behind" if number % 2 else "Django behind"
        assert all(expected in page for page in answers(fleet).values()), number


@pytest.mark.parametrize("how, cause", [
    ("import", "failed the WSGI import"),
    ("health", "failed its health check: GET /healthz answered 500"),
    ("migration", "failed its migrations"),
])
def test_a_broken_release_leaves_the_previous_one_serving(fleet, versions, tmp_path, how, cause):
    before = serving(fleet)
    project = broken_release(tmp_path / how, how)
    with LoadRun(urls(fleet, "web")) as web:
        result = run_pyinfra("-y", cwd=project)
    out = result.stdout
    assert result.returncode != 0
    assert cause in out, out[-3000:]
    failed_hosts = {h["address"] for h in fleet.hosts if re.search(
        rf"\[{re.escape(h['address'])}\].*(Error|error)", out)}
    assert failed_hosts, out[-3000:]  # the output names the host(s)
    if how == "health":
        assert "reverted to" in out
        # The URL and Host header it asked, and the app's own error line from its journal.
        assert re.search(r"answered 500 \(not 200\) \d+ times \(unix:/srv/\S+/socket/gunicorn\.sock, Host: \S+\); "
                         r"its last error: ERROR django\.request: Internal Server Error: /healthz", out), out[-3000:]
        assert len(failed_hosts) == 1  # the first batch failed: the batches after it never ran
    assert_no_request_failed(web)
    assert serving(fleet) == before
    assert all("Django behind" in page for page in answers(fleet).values())


def killed_once_one_host_switched(fleet, project) -> str:
    """A deploy of `project`, SIGKILLed as soon as one host's `current` points elsewhere; its output."""
    import os
    import signal
    import tempfile

    before = serving(fleet)
    with tempfile.TemporaryFile(mode="w+") as out:
        process = subprocess.Popen([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=project, stdout=out,
                                   stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                                   env=dict(os.environ, DJDEPLOY_FLEET=TEST_FLEET))
        deadline = time.monotonic() + 300
        while process.poll() is None and serving(fleet) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        out.seek(0)
        return out.read()


@pytest.mark.parametrize("version, markers", [
    ("v3", ["Starting operation: Release"]),  # the upload of the release
    ("v4", ["Starting operation: Switch to the release", "] Success"]),  # after batch 1 switched
])
def test_a_killed_deploy_then_a_normal_one_converges(fleet, versions, version, markers):
    if version == "v4":
        # Killed once the first host's `current` moved (its switch renames it before the
        # restart, which takes 4 s more here: its app starts slower): watched over SSH, not
        # read from the run's output, which a loaded machine may read too late.
        wsgi = versions[version] / "app" / "project" / "wsgi.py"
        if "sleep(4)" not in wsgi.read_text():
            wsgi.write_text(wsgi.read_text() + "\nimport time  # noqa: E402\n\ntime.sleep(4)\n")
        output = killed_once_one_host_switched(fleet, versions[version])
    else:
        output = deploy_killed_at(versions[version], markers)
    if version == "v4":  # one host had switched, the others not yet
        assert len(set(serving(fleet).values())) == 2, output[-2000:]
    result = run_pyinfra("-y", cwd=versions[version])
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\] deploy lock left by a killed deploy \(.+\): a deploy clears it", result.stdout)  # planning
    assert "cleared a deploy lock left by a killed deploy" in result.stdout  # done when it starts
    assert len(set(serving(fleet).values())) == 1
    assert all(f"Django {version} behind" in page for page in answers(fleet).values())
    for url in urls(fleet, "web", "/healthz") + urls(fleet, "staging", "/healthz"):
        assert wait_http_200(url, timeout=10)[0] == 200
    leftovers = fleet.ssh(fleet.hosts[0], f"ls -a /srv/{PROJECT}/releases").stdout.split()
    assert not [n for n in leftovers if n.endswith(".tar") or n.startswith(".new-")], leftovers


def test_the_lock_keeps_a_second_deploy_out(fleet, versions):
    first = subprocess.Popen([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=versions["v5"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**__import__("os").environ, "DJDEPLOY_FLEET": TEST_FLEET})
    seen = []
    for line in first.stdout:  # the lock is held from the first operation on
        seen.append(line)
        if "Starting operation: App group" in line:
            break
    second = run_pyinfra("-y", "--data", "lock_wait=1", cwd=versions["v4"])
    rest, _ = first.communicate(timeout=600)
    assert first.returncode == 0, rest[-3000:]
    assert second.returncode == 1
    assert re.search(rf"deploy lock held by \S+ pid {first.pid} since \S+: wait for that deploy",
                     second.stdout), second.stdout[-2000:]
    assert "no host was changed" in second.stdout
    assert re.search(rf"deploy lock held by \S+ pid {first.pid}: a deploy waits up to 1 s", second.stdout)
    assert all("Django v5 behind" in page for page in answers(fleet).values())


def test_old_releases_are_pruned_keeping_current_and_previous(fleet, versions):
    result = run_pyinfra("-y", "--data", "keep_releases=2", cwd=versions["v5"])
    assert result.returncode == 0, result.stdout[-3000:]
    for host in fleet.hosts:
        out = fleet.ssh(host, f"cd /srv/{PROJECT} && ls releases && basename $(readlink current) "
                              f"&& basename $(readlink previous) && ls venvs | wc -l").stdout.split()
        *kept, current, previous, venvs = out
        assert sorted(kept) == sorted({current, previous}), out
        assert venvs == "1"


def test_status_shows_what_the_tests_did(fleet, versions):
    result = run_pyinfra("-y", cwd=versions["v5"], deploy="status.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert results(result.stdout)["Grand total"]["changed"] == 0
    now = serving(fleet)
    for host in fleet.hosts:
        line = next(l for l in result.stdout.splitlines() if l.strip().startswith(host["address"] + ":"))
        assert f"current={now[host['machine']]} " in line
        assert re.search(r"since=\d{4}-\d\d-\d\dT", line)
        assert "unit=active" in line and "health=200" in line and "lock=free" in line
        log = fleet.ssh(host, f"cat /srv/{PROJECT}/revisions.log").stdout
        assert "switched" in log and "rolled back" in log
    # The release that failed its health check in this file: only the first batch (one host) tried it.
    reverted = [h for h in fleet.hosts if any(
        line >= versions["since"] and re.search(r"reverted to [0-9a-f]{12} ", line)
        for line in fleet.ssh(h, f"cat /srv/{PROJECT}/revisions.log").stdout.splitlines())]
    assert len(reverted) == 1, reverted
