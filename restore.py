"""Put a backup back on every app host of the run (use --limit for one): the latest of
the host (or, on a fresh host, of the project), or the snapshot --data backup=<id> names.
The app is stopped while its data and uploads move; what was there is kept beside them.
A dry run says what would be replaced, and by what.

    pyinfra inventory.py restore.py --limit web-1 --dry
    pyinfra inventory.py restore.py --limit web-1
    pyinfra inventory.py restore.py --limit web-1 --data backup=3f2a1b9c
"""

from pyinfra import host

from djdeploy import speed_up
from djdeploy.ops import backups
from djdeploy.preflight import app_settings, preflight
from djdeploy.run import lock

speed_up(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if s.runs_app and s.backup_host:
    snapshot = host.data.get("backup") or "latest"
    backups.restore_plan(host, s, snapshot)  # what it would replace, and by what
    lock.hold(host, root=s.root, path=s.lock_dir, wait=s.lock_wait)  # no deploy meanwhile
    backups.restored(name="Restore", s=s, snapshot=snapshot)
