"""The deploy as an unprivileged SSH user with sudo (`pyinfra --sudo`), as many real
servers are reached: the same result, the same guarantees for secrets."""

import json
import re
from secrets import token_urlsafe

from conftest import PROJECT, http_get, results, run_pyinfra, wait_http_200
from fleet.machine import SUDO_USER


def test_deploy_with_sudo_keeps_secrets_out_of_tmp_and_is_idempotent(fleet, deployed, tmp_path):
    host = fleet.by_group("web")[0]
    servers = tmp_path / "servers.toml"
    servers.write_text(f'[ssh]\nuser = "{SUDO_USER}"\nkey = "{fleet.state["key"]}"\n'
                       'known_hosts_file = "/dev/null"\nstrict_host_key_checking = "off"\n'
                       f'[web]\nhosts = ["{host["address"]}"]\n')
    secret = "sudo-" + token_urlsafe(16)
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "web.toml").write_text(f"API_TOKEN = {json.dumps(secret)}\n")
    (folder / "web.toml").chmod(0o600)
    env = {"DJDEPLOY_SERVERS": str(servers), "DJDEPLOY_SECRETS_DIR": str(folder)}
    probe = json.dumps({"APP_ENV_PROBE": "API_TOKEN"})
    since = fleet.ssh(host, "date +%s").stdout.strip()  # the host's clock, for its journal
    try:
        first = run_pyinfra("-y", "--sudo", "-vv", "--data", f"app_env={probe}", env=env)
        assert first.returncode == 0, first.stdout[-3000:]
        assert secret not in first.stdout
        assert re.search(r"\.env: .*API_TOKEN: added", first.stdout), first.stdout[-3000:]
        # The connection really was the unprivileged user's, raised by sudo: the host's own
        # journal has this run's SSH login as that user, and that user's sudo to root.
        auth = fleet.ssh(host, f"journalctl --no-pager -o cat --since @{since} | "
                               f"grep -E 'Accepted publickey for {SUDO_USER} |(^| ){SUDO_USER} : ' || true").stdout
        assert re.search(rf"^Accepted publickey for {SUDO_USER} from ", auth, re.M), auth[-2000:]
        assert re.search(rf"\b{SUDO_USER} : .*USER=root ; COMMAND=", auth), auth[-2000:]
        assert "sudo -H -n" in first.stdout

        status, body = wait_http_200(f"http://{host['address']}/env-digests", timeout=30)
        import hashlib

        assert json.loads(body) == {"API_TOKEN": hashlib.sha256(secret.encode()).hexdigest()}
        out = fleet.ssh(host, f"stat -c '%U %G %a' /srv/{PROJECT}/shared/.env").stdout.strip()
        assert out == "root web 640"
        # The secret is in .env and nowhere else: not /tmp, /var/tmp, the sudo user's home.
        found = fleet.ssh(host, f"grep -rlaF -e {secret} /tmp /var/tmp /home /srv /root /etc 2>/dev/null "
                                "|| true").stdout.split()
        assert found == [f"/srv/{PROJECT}/shared/.env"]
        leftovers = fleet.ssh(host, "ls -A /tmp /var/tmp | grep -c '^pyinfra-' || true").stdout.strip()
        assert leftovers == "0"

        again = run_pyinfra("-y", "--sudo", "--data", f"app_env={probe}", env=env)
        assert again.returncode == 0, again.stdout[-3000:]
        changed = {op: row["changed"] for op, row in results(again.stdout).items() if row["changed"]}
        assert changed == {}, again.stdout[-3000:]
    finally:
        assert run_pyinfra("-y", "--limit", host["address"]).returncode == 0
    assert http_get(f"http://{host['address']}/healthz")[0] == 200
