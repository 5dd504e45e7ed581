"""A drifted host is still seen with the batched facts: the dry run reports it and the
next deploy repairs it (and restarts the app only when it may run the edit)."""

import re

import pytest

from conftest import PROJECT, http_get, results, run_pyinfra

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


@pytest.mark.parametrize("kind", list(DRIFTS))
def test_drift_is_reported_by_the_dry_run_and_repaired(fleet, deployed, kind):
    command, operation, moved_in, restart = DRIFTS[kind]
    web = fleet.by_group("web")[0]
    # A clean start: whatever the tests before this one on the fleet left is deployed back,
    # and then a run changes nothing.
    assert run_pyinfra("-y").returncode == 0
    start = run_pyinfra("-y")
    assert results(start.stdout)["Grand total"]["changed"] == 0, start.stdout[-3000:]
    fleet.ssh(web, command)

    dry = run_pyinfra("--dry", "--limit", web["address"])
    assert dry.returncode == 0, dry.stdout[-3000:]
    # An operation with `_if` counts in the "may change" column ("-" in the first).
    assert re.search(rf"^\s*{re.escape(operation)}\s+(-\s+)?1 \({re.escape(web['address'])}\)", dry.stdout, re.M), \
        dry.stdout[-3000:]

    pid = fleet.ssh(web, f"systemctl show -P MainPID {PROJECT}").stdout.strip()
    repair = run_pyinfra("-y", "--limit", web["address"])
    assert repair.returncode == 0, repair.stdout[-3000:]
    rows = results(repair.stdout)
    assert rows[operation]["changed"] == 1
    assert rows["Switch to the release"]["changed"] == (1 if moved_in else 0)
    if moved_in:
        restarted = fleet.ssh(web, f"systemctl show -P MainPID {PROJECT}").stdout.strip() != pid
        assert restarted is restart, (pid, restart)
        said = fleet.ssh(web, f"tail -n 1 /srv/{PROJECT}/revisions.log").stdout
        assert ("restarted (the files it reads at start changed)" in said) is restart, said
        assert ("the app already runs them, not restarted" in said) is not restart, said
    assert http_get(f"http://{web['address']}/healthz")[0] == 200
    assert results(run_pyinfra("-y").stdout)["Grand total"]["changed"] == 0  # repaired for good


def test_a_no_op_is_one_command_per_host_and_takes_no_lock_unless_another_deploy_holds_it(fleet, deployed):
    run_pyinfra("-y")  # the facts this deploy asks are learned
    noop = run_pyinfra("-y", env={"DJDEPLOY_COUNT_COMMANDS": "1"})
    assert results(noop.stdout)["Grand total"]["changed"] == 0
    counts = {host: int(n) for host, n in re.findall(r"remote commands: (\S+) (\d+)", noop.stdout)}
    assert counts == {h["address"]: 1 for h in fleet.hosts}, counts
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
