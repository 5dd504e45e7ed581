"""Deploy a Django project under systemd: the recipe of "Manage background processes
with Systemd", step by step, on every host of the inventory.

    pyinfra inventory.py deploy.py              # deploy
    pyinfra inventory.py deploy.py --dry --diff # show what would change first
"""

from pyinfra import host
from pyinfra.operations import files, pip, server, systemd
from pyinfra.operations.util import any_changed

from djdeploy import build, operations
from djdeploy.facts import HostPython
from djdeploy.settings import app_settings, preflight

preflight(host.state)  # every host reachable and its data valid, or nothing changes anywhere
s = app_settings(host)  # this host's settings, from group_data/ and --data

# The app runs as its own system user, without a login shell.
server.group(name="App group", group=s.group, system=True)
server.user(
    name="App user", user=s.user, group=s.group, system=True,
    shell="/usr/sbin/nologin", home=s.root, create_home=False, ensure_home=False,
)

# /srv/<project>: root's, readable by the app; data/ is where the app writes (SQLite).
files.directory(name="Project folder", path=s.root, user="root", group=s.group, mode="0750")
files.directory(name="Data folder", path=s.data_dir, user=s.user, group=s.group, mode="0750")

# The virtualenv, filled offline from wheels built once on this controller.
local_wheels = build.wheelhouse(s.requirements, *host.get_fact(HostPython))
operations.wheelhouse(name="Wheelhouse", src=local_wheels, dest=s.wheels_dir)
pip.virtualenv(name="Virtualenv", path=s.venv, python="python3", venv=True)
packages = operations.requirements(
    name="Requirements", venv=s.venv, wheels_dir=s.wheels_dir, src=local_wheels,
)

# The Django project itself.
digest, archive = build.source_archive(s.app_path)
code = operations.source_tree(name="App code", archive=archive, digest=digest, dest=s.code_dir)

# .env: VIRTUAL_ENV, DJANGO_SETTINGS_MODULE and the app's settings.
env = files.template(
    name=".env", src="templates/env.j2", dest=s.env_file, user="root", group=s.group, mode="0640", s=s,
)
key = operations.secret_key(name="Secret key", path=s.secret_key_file, group=s.group)

# The run script: load .env, exec gunicorn from the virtualenv.
run = files.template(
    name="run script", src="templates/run.j2", dest=f"{s.root}/run", user="root", group=s.group,
    mode="0750", s=s,
)

gunicorn = files.put(
    name="gunicorn settings", src="files/gunicorn.conf.py", dest=s.gunicorn_config,
    user="root", group=s.group, mode="0640",
)

operations.migrations(name="Database migrations", root=s.root, code_dir=s.code_dir, user=s.user)

# The systemd unit.
unit = files.template(
    name="systemd unit", src="templates/app.service.j2", dest=s.unit_file, mode="0644", s=s,
)
systemd.daemon_reload(name="Reload systemd", _if=unit.did_change)

# Restart only when something the service runs changed; then enabled and running.
systemd.service(
    name="Restart the app", service=s.unit, running=None, restarted=True,
    _if=any_changed(packages, code, env, key, run, gunicorn, unit),
)
systemd.service(name="Enable and start the app", service=s.unit, running=True, enabled=True)
