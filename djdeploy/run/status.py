"""status.py's report: one line per host, read with one round of facts."""

from __future__ import annotations

import sys
import time

from pyinfra.facts.systemd import SystemdStatus

from djdeploy.ops.balancer import UNIT as BALANCER
from djdeploy.ops.balancer import BalancerServers
from djdeploy.ops.facts import FileText, HealthAnswer, JobTimers, LockHolder, UnitStates
from djdeploy.ops.releases import deployment, last_served, tool_env
from djdeploy.terminal import printable


def went_live(revisions: str | None, release_id: str | None) -> str:
    """When `release_id` last started serving, from the host's revisions log."""
    lines = (revisions or "").splitlines()
    served = last_served(lines, release_id)
    return "?" if served is None else lines[served].split(" ", 1)[0]


def _when(seconds) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds else "never"


def report(host, s) -> None:
    deployed = deployment(s)
    if s.web:
        unit = "active" if host.get_fact(SystemdStatus, services=[s.unit]).get(s.unit) else "inactive"
        health = host.get_fact(HealthAnswer, tool=s.release_tool, tool_env=tool_env(s))
    else:  # a worker-only host: no web unit, its processes below
        unit, health = "none", "none"
    revisions = host.get_fact(FileText, path=f"{s.root}/revisions.log")
    current = deployed["current"] or "none"
    lock = host.get_fact(LockHolder, path=s.lock_dir)
    fields = [
        f"{host.name}:",
        f"current={current}",
        f"since={went_live(revisions, deployed['current'])}",
        f"previous={deployed['previous'] or 'none'}",
        f"deps={deployed['venv'] or 'none'}",
        f"unit={unit}",
        f"health={health}",
        f"releases={','.join(deployed['releases']) or 'none'}",
        f"lock={lock['owner'] + ' since ' + lock['since'] if lock else 'free'}",
    ]
    if s.running_processes:  # every process beside the web: state since when, restarts
        states = host.get_fact(UnitStates, units=list(s.process_instances))
        shown = []
        for name in s.process_instances:
            state = states.get(name, {})
            shown.append(f"{name.removeprefix(s.project + '-').removesuffix('.service')}:{state.get('state', 'unknown')}"
                         f"({_when(state.get('since'))},restarts {state.get('restarts', 0)})")
        fields.append("processes=" + ",".join(shown))
    jobs = host.get_fact(JobTimers, project=s.project)
    if jobs:  # name:result of the last run (last run, next run)
        fields.append("jobs=" + ",".join(f"{name}:{job['result']}({_when(job['last'])},next {_when(job['next'])})"
                                         for name, job in sorted(jobs.items())))
    if s.restic_backups:
        fields += backup_fields(host.get_fact(FileText, path=f"{s.backup_dir}/status"), time.time())
    print("    " + printable(" ".join(fields)), file=sys.stderr, flush=True)


def backup_fields(status: str | None, now: float) -> list[str]:
    """The last backup (its snapshot, when, how long ago; a failure since), and the last
    verification, from the backup tool's status file (files/backup.sh)."""
    lines = dict(line.split(" ", 1) for line in (status or "").splitlines() if " " in line)

    def when(seconds: str) -> str:
        ago = max(0, int(now) - int(seconds))
        age = f"{ago // 86400}d" if ago >= 86400 else f"{ago // 3600}h" if ago >= 3600 else f"{ago // 60}m"
        return f"{_when(int(seconds))}({age} ago)"

    def last(good: str, failed: str, never: str) -> str:
        shown = never
        if good in lines:
            snapshot, at = lines[good].split()[:2]
            shown = f"{snapshot}@{when(at)}"
        if failed in lines:
            at, why = (lines[failed].split(" ", 1) + [""])[:2]
            shown = f"FAILED@{when(at)}:{why.replace(' ', '_')}(last:{shown})"
        return shown

    backup, verified = last("backup", "take_failed", "none"), last("verified", "verify_failed", "never")
    return [f"backup={backup}", f"verified={verified}"]


def report_database(host, projects: list[dict], s=None) -> None:
    """One line for a database server: PostgreSQL's state and the projects it serves; with a
    backup host, its last backup and verification (pgBackRest's status file there)."""
    active = host.get_fact(SystemdStatus, services=["postgresql.service"]).get("postgresql.service")
    served = [f"{p['name']} ({len(p['hosts'])} web hosts)" for p in projects]
    fields = [f"postgresql={'active' if active else 'inactive'}", f"databases={','.join(served) or 'none'}"]
    if s is not None and s.backup_from:
        from djdeploy.ops.pgbackrest import STATUS, Archiver

        keeper = host.state.inventory.get_host(s.backup_from)
        archiver = host.get_fact(Archiver) or {"archived": 0, "failed": 0}
        # WAL that cannot reach the backup host: no point in time after it, and pg_wal grows
        failing = archiver["failed"] > archiver["archived"]
        fields += [f"backups_on={keeper.name}",
                   f"archive={'FAILING since ' if failing else 'ok, last '}"
                   f"{_when(archiver['failed'] if failing else archiver['archived'])}".replace(" ", "_"),
                   *backup_fields(keeper.get_fact(FileText, path=STATUS), time.time())]
    print("    " + printable(f"{host.name}: database server {' '.join(fields)}"), file=sys.stderr, flush=True)


def report_keeper(host, s) -> None:
    """One line for a files host (with its uploads' backups) or a backup host."""
    fields = [f"{host.name}:", "files host" if s.files_server else "backup host"]
    if s.restic_backups:
        fields += backup_fields(host.get_fact(FileText, path=f"{s.backup_dir}/status"), time.time())
    print("    " + printable(" ".join(fields)), file=sys.stderr, flush=True)


def report_balancer(host, s) -> None:
    """One line for a balancer: HAProxy's state and each web host's status in its rotation."""
    active = host.get_fact(SystemdStatus, services=[BALANCER]).get(BALANCER)
    servers = host.get_fact(BalancerServers, tool=s.balancer_tool, project=s.project)
    shown = ",".join(f"{name}:{state.replace(' ', '')}" for name, state in servers.items())
    print(f"    {host.name}: balancer haproxy={'active' if active else 'inactive'} "
          f"servers={shown or 'none'}", file=sys.stderr, flush=True)
