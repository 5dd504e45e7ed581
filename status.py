"""Per host: the release serving and since when, the unit's state, the health answer,
the releases kept, and who holds the deploy lock. Changes nothing.

    pyinfra inventory.py status.py
"""

from pyinfra import host

from djdeploy.status import report
from djdeploy.settings import app_settings, preflight

preflight(host.state)
report(host, app_settings(host))
