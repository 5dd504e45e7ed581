"""Per host: the release serving and since when, the unit's state, the health answer,
the releases kept, and who holds the deploy lock. Changes nothing.

    pyinfra inventory.py status.py
"""

from pyinfra import host

from djdeploy import factcache
from djdeploy.status import report
from djdeploy.settings import app_settings, preflight

factcache.install(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if not s.database_server:  # the app's hosts; the database server has no releases
    report(host, s)
