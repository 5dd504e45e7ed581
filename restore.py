"""Put a backup back. On SQLite, on every app host of the run (use --limit for one): the
latest of the host (or, on a fresh host, of the project), or the snapshot --data backup=<id>
names; the app is stopped while its data and uploads move; a files host's uploads the same
way. On PostgreSQL, on the db host:
its cluster as the archive's last WAL left it, as backup --data backup=<label> left it, or
as it was at --data restore_to="<UTC time>"; PostgreSQL is stopped while it moves. What was
there is kept beside. A dry run says what would be replaced, and by what.

    pyinfra inventory.py restore.py --limit web-1 --dry
    pyinfra inventory.py restore.py --limit web-1
    pyinfra inventory.py restore.py --limit web-1 --data backup=3f2a1b9c
    pyinfra inventory.py restore.py --limit db-1 --data restore_to="2026-12-07 05:30:00"
"""

from pyinfra import host

from djdeploy import speed_up
from djdeploy.ops import backups, pgbackrest
from djdeploy.preflight import app_settings, fail, preflight
from djdeploy.run import lock

speed_up(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if s.restic_backups:
    snapshot = s.backup or "latest"
    backups.restore_plan(host, s, snapshot)  # what it would replace, and by what
    if s.runs_app:
        lock.hold(host, root=s.root, path=s.lock_dir, wait=s.lock_wait)  # no deploy meanwhile
    backups.restored(name="Restore", s=s, snapshot=snapshot)
elif s.database_server and s.backup_host:
    if s.backup and s.restore_to:
        fail([f"host {host.name}: --data backup and restore_to both given: name a backup, or a time, not both"])
    what = s.restore_to or s.backup or "latest"
    pgbackrest.restore_plan(host, what)
    pgbackrest.restored(name="Restore PostgreSQL", what=what, keeper=host.state.inventory.get_host(s.backup_from))
