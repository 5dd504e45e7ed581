"""A drifted host is still seen with the batched facts: the dry run reports it and the
next deploy repairs it (and restarts the app only when it may run the edit)."""

import re

import pytest

from conftest import PROJECT, app_version, http_get, results, run_pyinfra

DRIFTS = {
    # kind: (command on the host, operation that must repair it, whether the switch moves
    # a repaired file in, restart expected). A repaired file waits for the switch like any
    # file the app reads at start; it owes no restart when the app never ran the edit, and
    # one when the app was restarted by hand after the edit.
    "unit edited": (f"sed -i 's/^Restart=on-failure/Restart=always/' /etc/systemd/system/{PROJECT}.service",
                    "systemd unit", True, False),
    "run script edited": (f"echo '# edited by hand' >> /srv/{PROJECT}/run", "run script", True, False),
    ".env edited": (f"echo 'DJANGO_DEBUG=true' >> /srv/{PROJECT}/shared/.env", ".env", True, False),
    ".env edited, app restarted by hand": (
        f"sleep 1; echo 'DJANGO_DEBUG=true' >> /srv/{PROJECT}/shared/.env; systemctl restart {PROJECT}",
        ".env", True, True),
    "service stopped": (f"systemctl stop {PROJECT}.service", "Enable and start the app", False, False),
    "release deleted": (f"rm -rf /srv/{PROJECT}/releases/$(basename $(readlink /srv/{PROJECT}/current))",
                        "Release", False, False),
}


# Every drift with the speed-ups (the fleet settled first, so the repair run is the one that
# must notice), and some with plain pyinfra (DJDEPLOY_SPEED=off). In this order "unit edited"
# comes after "service stopped" on the same host: the app the deploy started again must not
# be taken for one restarted by hand (releases.started records what it serves).
SPEEDS = [(kind, "on") for kind in DRIFTS] + [(kind, "off") for kind in
                                              ("unit edited", "service stopped", "release deleted")]


@pytest.mark.parametrize("kind, speed", SPEEDS)
def test_drift_is_reported_by_the_dry_run_and_repaired(fleet, deployed, kind, speed):
    command, operation, moved_in, restart = DRIFTS[kind]
    web = fleet.by_group("web")[0]
    env = {"DJDEPLOY_SPEED": speed}
    # A clean start: whatever the tests before this one on the fleet left is deployed back,
    # and then a run changes nothing; with the speed-ups, the run after it finds the fleet
    # settled (nothing planned).
    assert run_pyinfra("-y", env=env).returncode == 0
    start = run_pyinfra("-y", env=env)
    assert results(start.stdout)["Grand total"]["changed"] == 0, start.stdout[-3000:]
    if speed == "on":
        assert "Settled: none of the 3 hosts changed" in run_pyinfra("-y", env=env).stdout
    fleet.ssh(web, command)

    dry = run_pyinfra("--dry", "--limit", web["address"], env=env)
    assert dry.returncode == 0, dry.stdout[-3000:]
    # An operation with `_if` counts in the "may change" column ("-" in the first).
    assert re.search(rf"^\s*{re.escape(operation)}\s+(-\s+)?1 \({re.escape(web['address'])}\)", dry.stdout, re.M), \
        dry.stdout[-3000:]

    pid = fleet.ssh(web, f"systemctl show -P MainPID {PROJECT}").stdout.strip()
    repair = run_pyinfra("-y", env=env)  # the whole fleet: a settled one would skip the host
    assert repair.returncode == 0, repair.stdout[-3000:]
    assert "Settled" not in repair.stdout
    rows = results(repair.stdout)
    assert rows[operation]["changed"] == 1, repair.stdout[-3000:]
    assert rows["Switch to the release"]["changed"] == (1 if moved_in else 0)
    if moved_in:
        restarted = fleet.ssh(web, f"systemctl show -P MainPID {PROJECT}").stdout.strip() != pid
        assert restarted is restart, (pid, restart, fleet.ssh(web, f"tail -n 4 /srv/{PROJECT}/revisions.log").stdout)
        said = fleet.ssh(web, f"tail -n 1 /srv/{PROJECT}/revisions.log").stdout
        assert ("restarted (the files it reads at start changed)" in said) is restart, said
        assert ("the app already runs them, not restarted" in said) is not restart, said
    assert http_get(f"http://{web['address']}/healthz")[0] == 200
    assert results(run_pyinfra("-y", env=env).stdout)["Grand total"]["changed"] == 0  # repaired for good


def test_a_no_op_is_one_command_per_host_and_takes_no_lock_unless_another_deploy_holds_it(fleet, deployed, tmp_path):
    run_pyinfra("-y")  # the facts this deploy asks are learned
    planned = run_pyinfra("-y", env={"DJDEPLOY_COUNT_COMMANDS": "1", "DJDEPLOY_SETTLED": "off"})
    rows = results(planned.stdout)
    assert rows["Grand total"]["changed"] == 0 and rows["Grand total"]["no_change"] > 40, planned.stdout[-3000:]
    counts = {host: int(n) for host, n in re.findall(r"remote commands: (\S+) (\d+)", planned.stdout)}
    assert counts == {h["address"]: 1 for h in fleet.hosts}, counts
    # Settled: the run before changed nothing, nor did anything here; nothing is planned,
    # and each host is asked one short command (its fingerprint).
    run_pyinfra("-y")
    noop = run_pyinfra("-y", env={"DJDEPLOY_COUNT_COMMANDS": "1"})
    assert "Settled: none of the 3 hosts changed" in noop.stdout, noop.stdout[-3000:]
    assert results(noop.stdout)["Grand total"]["changed"] == 0
    counts = {host: int(n) for host, n in re.findall(r"remote commands: (\S+) (\d+)", noop.stdout)}
    assert counts == {h["address"]: 1 for h in fleet.hosts}, counts
    # What the app writes at run time (SQLite's journal in shared/data, an upload in
    # shared/media) is not drift: still settled.
    fleet.ssh(fleet.by_group("web")[0], f"cd /srv/{PROJECT}/shared && touch data/db.sqlite3-journal media/upload.txt "
                                        "&& rm data/db.sqlite3-journal")
    assert "Settled: none of the 3 hosts changed" in run_pyinfra("-y").stdout
    # New code is a new run: planned, released, served.
    version = app_version(tmp_path / "v2", "settled-then-changed")
    changed = run_pyinfra("-y", cwd=version, env={"DJDEPLOY_COUNT_COMMANDS": "1"})
    assert "Settled" not in changed.stdout and results(changed.stdout)["Release"]["changed"] == 3, \
        changed.stdout[-3000:]
    # The facts the release and the switch cannot change are still answered by the batch
    # (djdeploy.shell.touching): 12 to 14 commands a host here, not one per fact after the
    # first change (36 to 42 when the batch is missing facts, as after a first deploy).
    counts = {host: int(n) for host, n in re.findall(r"remote commands: (\S+) (\d+)", changed.stdout)}
    assert len(counts) == 3 and max(counts.values()) <= 20, counts
    web = fleet.by_group("web")[0]
    assert "settled-then-changed" in http_get(f"http://{web['address']}/")[1]
    assert run_pyinfra("-y").returncode == 0  # back to the project's own code
    # A dry run asks the same facts, so the no-op after it is still one command per host.
    assert run_pyinfra("--dry").returncode == 0
    after_dry = run_pyinfra("-y", env={"DJDEPLOY_COUNT_COMMANDS": "1"})
    counts = {host: int(n) for host, n in re.findall(r"remote commands: (\S+) (\d+)", after_dry.stdout)}
    assert counts == {h["address"]: 1 for h in fleet.hosts}, counts
    # Another deploy holds one host's lock: even a run that changes nothing waits for it.
    web = fleet.by_group("web")[0]
    lock = f"/srv/{PROJECT}/.deploy-lock"
    fleet.ssh(web, f"mkdir {lock} && echo other-run > {lock}/run && echo 'someone@elsewhere pid 1' > {lock}/owner "
                   f"&& echo 2026-01-01T00:00:00Z > {lock}/since")
    try:
        dry = run_pyinfra("--dry", "--data", "lock_wait=1")  # says so, and waits for nothing
        assert dry.returncode == 0, dry.stdout[-3000:]
        assert f"[{web['address']}] deploy lock held by someone@elsewhere pid 1: a deploy waits up to 1 s" \
            in dry.stdout, dry.stdout[-3000:]
        held = run_pyinfra("-y", "--data", "lock_wait=1")
        assert held.returncode == 1
        assert "deploy lock held by someone@elsewhere pid 1 since 2026-01-01T00:00:00Z" in held.stdout
    finally:
        fleet.ssh(web, f"rm -rf {lock}")
