"""Back up now: every app host of a project with a backup host takes a snapshot of its
SQLite data and uploads (files/backup.sh), and says its id. Changes nothing else.

    pyinfra inventory.py backup.py
    pyinfra inventory.py backup.py --limit web-1
"""

from pyinfra import host

from djdeploy import speed_up
from djdeploy.ops import backups
from djdeploy.preflight import app_settings, preflight

speed_up(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if s.runs_app and s.backup_host:
    backups.taken(name="Backup", s=s)
