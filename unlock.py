"""Clear the deploy lock on every host, whoever holds it: for a lock left by a deploy
that was killed on another controller (one killed on this controller is cleared by the
next deploy by itself). Check first that no deploy is running.

    pyinfra inventory.py unlock.py
"""

from pyinfra import host

from djdeploy.ops.releases import clear_lock
from djdeploy.preflight import app_settings, preflight

preflight(host.state)
s = app_settings(host)
if s.runs_app:  # only the app's hosts take the deploy lock
    clear_lock(name="Clear the deploy lock", root=s.root, path=s.lock_dir)
