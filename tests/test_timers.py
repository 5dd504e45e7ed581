"""Scheduled jobs: systemd timers that run manage.py in the current release, each on one
host of the fleet; a failed run is visible; a second deploy changes nothing; removed from
data, they go."""

from __future__ import annotations

import json
import re
import time

from conftest import PROJECT, results, run_pyinfra

TIMERS = {
    "tick": {"command": "check --fail-level ERROR", "on_calendar": "*:*:0/5", "timeout": "2min"},
    "broken": {"command": "no_such_command", "on_calendar": "*:*:0/5", "persistent": False},
}


def test_the_job_timers_fact_reads_systemctl():
    from djdeploy.ops.facts import JobTimers

    listed = json.dumps([{"next": 1796175055000000, "left": 1, "last": 1796175050000000, "passed": 1,
                          "unit": "shop-job-tick.timer", "activates": "shop-job-tick.service"},
                         {"next": None, "left": None, "last": None, "passed": None,  # a name with -job- in it
                          "unit": "shop-job-old-job-x.timer", "activates": "shop-job-old-job-x.service"},
                         {"next": None, "left": None, "last": None, "passed": None,
                          "unit": "shop-job-new.timer", "activates": "shop-job-new.service"}])
    output = ["prefix=shop-job-", listed, "Result=exit-code", "ActiveState=failed", "Id=shop-job-tick.service", "",
              "Result=success", "ActiveState=activating", "Id=shop-job-new.service"]
    assert JobTimers().process(output) == {
        "tick": {"last": 1796175050, "next": 1796175055, "result": "exit-code"},
        "old-job-x": {"last": None, "next": None, "result": "?"},
        "new": {"last": None, "next": None, "result": "running"}}
    assert JobTimers().process([line for line in output if line]) == JobTimers().process(output)  # no blank lines


def job_files(fleet, host) -> list[str]:
    out = fleet.ssh(host, f"ls /etc/systemd/system | grep '^{PROJECT}-job-' || true").stdout
    return out.split()


def test_a_timer_runs_its_job_on_one_host_and_a_failed_run_shows(fleet, deployed):
    data = f"timers={json.dumps(TIMERS)}"
    first = run_pyinfra("-y", "--data", data)
    assert first.returncode == 0, first.stdout[-3000:]
    chosen, others = fleet.hosts[0], fleet.hosts[1:]  # the first host of the inventory that has them
    try:
        assert job_files(fleet, chosen) == sorted(f"{PROJECT}-job-{n}.{k}" for n in TIMERS for k in ("service", "timer"))
        for other in others:
            assert job_files(fleet, other) == [], other["machine"]
        tick = f"{PROJECT}-job-tick.service"
        deadline = time.monotonic() + 60  # each fires every 5 s
        while True:
            shown = fleet.ssh(chosen, f"journalctl -u {tick} -o cat --no-pager | grep -c 'System check identified no issues'; "
                                      f"systemctl show -P Result {PROJECT}-job-broken.service").stdout.split()
            if int(shown[0]) >= 2 and shown[1] == "exit-code" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert int(shown[0]) >= 2, shown  # the job ran, more than once, with the app's settings
        assert shown[1] == "exit-code", shown  # a failed run shows: systemctl --failed, logs.py
        for other in others:  # and nowhere else
            assert fleet.ssh(other, f"journalctl -u {tick} -o cat --no-pager | wc -l").stdout.strip() == "0"
        runs_as = fleet.ssh(chosen, f"systemctl show -P User {tick}").stdout.strip()
        assert runs_as == "web"
        exposure = fleet.ssh(chosen, f"systemd-analyze security {tick} --no-pager | tail -n 1").stdout
        score = float(re.search(r"exposure level for \S+: (\d+\.\d+)", exposure).group(1))
        print(f"\nscheduled job unit exposure: {score}")
        assert score <= 2.0, exposure
        again = run_pyinfra("-y", "--data", data)
        assert results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-3000:]
        # Every 5 s a job is nearly always running ("running" in status.py): stop the timers,
        # let the runs end, and status.py shows each one's last result.
        fleet.ssh(chosen, f"systemctl stop {PROJECT}-job-tick.timer {PROJECT}-job-broken.timer; "
                          f"while systemctl is-active -q {PROJECT}-job-tick.service {PROJECT}-job-broken.service; "
                          "do sleep 0.5; done")
        status = run_pyinfra("-y", "--data", data, deploy="status.py")
        line = next(l for l in status.stdout.splitlines() if l.strip().startswith(chosen["address"] + ":"))
        assert re.search(r" jobs=broken:exit-code\(\d{4}-\S+Z,next never\),tick:success\(\d{4}-\S+Z,next never\)$",
                         line), line
    finally:
        removed = run_pyinfra("-y")  # not in data any more: they go
    assert removed.returncode == 0, removed.stdout[-3000:]
    # The test's timers are gone; the app's own (app/djdeploy.toml: prune-tasks) may stay.
    assert [f for f in job_files(fleet, chosen) if "-job-tick." in f or "-job-broken." in f] == []
    assert fleet.ssh(chosen, f"systemctl list-timers --all --no-pager | grep -c -e '{PROJECT}-job-tick' "
                             f"-e '{PROJECT}-job-broken' || true").stdout.strip() == "0"
