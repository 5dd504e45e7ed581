"""Back up now, then prove the backup restores. On SQLite, every app host of a project with
a backup host takes a snapshot of its data and uploads (files/backup.sh), and a files host
of the uploads it keeps; on PostgreSQL, the backup host takes a backup of the db host's
cluster (pgBackRest: files/pgbackrest.sh).
Each says its id. Changes nothing else.

    pyinfra inventory.py backup.py
    pyinfra inventory.py backup.py --limit web-1
"""

from pyinfra import host

from djdeploy import speed_up
from djdeploy.ops import backups, pgbackrest
from djdeploy.preflight import app_settings, preflight

speed_up(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if s.restic_backups:
    backups.taken(name="Backup", s=s)
elif s.backup_server and s.backup_db:
    pgbackrest.taken(name="Backup of PostgreSQL", s=s)
