"""Per host: the release serving and since when, the unit's state, the health answer,
the releases kept, and who holds the deploy lock; for a database server, PostgreSQL's
state and the databases it serves; for a balancer, HAProxy's state and each web host's
status in it. Changes nothing.

    pyinfra inventory.py status.py
"""

from pyinfra import host

from djdeploy import speed_up
from djdeploy.preflight import app_settings, database_clients, preflight
from djdeploy.run.status import report, report_balancer, report_database, report_keeper

speed_up(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if s.database_server:
    report_database(host, database_clients(host.state, host.name), s)
elif s.balancer:
    report_balancer(host, s)
elif s.files_server or s.backup_server:
    report_keeper(host, s)
else:
    report(host, s)
