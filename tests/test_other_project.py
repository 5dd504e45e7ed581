"""A second, differently laid-out Django project, deployed by data alone (no code edits)."""

import json

from conftest import http_get, results, run_pyinfra, wait_http_200

SHOP_DATA = {
    "project": "shop",
    "app_path": "tests/otherapp/src",
    "requirements": "tests/otherapp/requirements/production.txt",
    "wsgi_module": "shop.serve:app",
    "settings_module": "shop.conf.production",
    "app_user": "shop",
    "port": 8001,  # the front's, on the host's addresses
    "app_env": {"SHOP_GREETING": "hello-from-data"},
    "health_path": "/up",
}


def data_args(data):
    args = []
    for key, value in data.items():
        args += ["--data", f"{key}={json.dumps(value) if isinstance(value, dict) else value}"]
    return args


def test_second_project_deploys_beside_the_first_by_data_alone(fleet, deployed):
    host = fleet.by_group("staging")[0]
    result = run_pyinfra("-y", "--limit", host["address"], *data_args(SHOP_DATA))
    assert result.returncode == 0, result.stdout[-3000:] + result.stdout[-3000:]

    status, body = wait_http_200(f"http://{host['address']}:8001/up")
    assert status == 200, body
    assert http_get(f"http://{host['address']}:8001/") == (200, "shop says hello-from-data")
    # The first project still serves, untouched, on the same host.
    assert http_get(f"http://{host['address']}:8080/healthz")[0] == 200

    out = fleet.ssh(host, "systemctl is-active shop; ps -eo user:20,args | grep '[/]srv/shop/.*djdeploy_wsgi'").stdout
    assert out.splitlines()[0] == "active"
    assert {line.split()[0] for line in out.splitlines()[1:]} == {"shop"}
    env = fleet.ssh(host, "cat /srv/shop/shared/.env").stdout
    assert 'DJDEPLOY_APP_WSGI="shop.serve:app"' in env  # served through the deploy's entry
    assert "from shop.conf.production import *" in fleet.ssh(host, "cat /srv/shop/django/djdeploy_settings.py").stdout
    assert 'SHOP_GREETING="hello-from-data"' in env
    # Neither app's user can read the other's .env (or even reach its folder).
    for user, other in (("staging", "/srv/shop/shared/.env"), ("shop", "/srv/my_awesome_project/shared/.env")):
        out = fleet.ssh(host, f"runuser -u {user} -- cat {other}; echo rc=$?", check=False)
        assert "rc=1" in out.stdout and "Permission denied" in out.stderr + out.stdout, (user, out)
    assert "rc=0" in fleet.ssh(host, "runuser -u shop -- cat /srv/shop/shared/.env >/dev/null; echo rc=$?").stdout

    again = run_pyinfra("-y", "--limit", host["address"], *data_args(SHOP_DATA))
    assert again.returncode == 0
    assert results(again.stdout)["Grand total"]["changed"] == 0
