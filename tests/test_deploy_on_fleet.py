"""The deploy on real hosts: what a user checks after `pyinfra inventory.py deploy.py`."""

import json
import re
import time

from conftest import PROJECT, http_get, results, run_pyinfra, wait_http_200

PORTS = {"web": 80, "staging": 8080}
USERS = {"web": "web", "staging": "staging"}


def test_every_host_answers_200_from_the_controller(fleet, deployed):
    for host in fleet.hosts:
        base = f"http://{host['address']}:{PORTS[host['group']]}"
        status, body = http_get(base + "/")
        assert status == 200, (host["machine"], body[:300])
        assert f"Hello from {host['machine']}" in body
        status, body = http_get(base + "/healthz")
        assert status == 200, (host["machine"], body[:300])
        health = json.loads(body)
        assert health["status"] == "ok" and health["migrations"] > 0  # it read the database


def test_unit_is_active_and_enabled(fleet, deployed):
    for host in fleet.hosts:
        out = fleet.ssh(host, f"systemctl is-active {PROJECT}; systemctl is-enabled {PROJECT}").stdout
        assert out.split() == ["active", "enabled"], host["machine"]


def test_gunicorn_runs_as_the_groups_user_never_root(fleet, deployed):
    for host in fleet.hosts:
        out = fleet.ssh(host, "ps -eo user:20,args | grep '[b]in/gunicorn'").stdout
        owners = [line.split()[0] for line in out.splitlines()]
        assert len(owners) == 3, out  # the master and 2 workers
        assert set(owners) == {USERS[host["group"]]}, (host["machine"], out)


def test_files_have_the_owners_and_modes_the_deploy_sets(fleet, deployed):
    host = fleet.by_group("web")[0]
    out = fleet.ssh(host, f"cd /srv/{PROJECT} && stat -c '%n %U %G %a' . shared shared/.env run "
                          f"shared/secret_key shared/data releases current/ current/venv/ "
                          f"/etc/systemd/system/{PROJECT}.service").stdout
    modes = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    # Only the front (an ACL entry for its user) may pass through, to the release's static files.
    assert modes["."] == ["root", "web", "750"]
    assert modes["shared"] == ["root", "web", "750"]
    acl = fleet.ssh(host, f"getfacl -cp /srv/{PROJECT}").stdout.split()
    assert [entry for entry in acl if entry.startswith(("user:", "group:")) and entry.split(":")[1]] == \
        ["user:caddy:--x"], acl
    assert modes["shared/.env"] == ["root", "web", "640"]
    assert modes["run"] == ["root", "web", "750"]
    assert modes["shared/secret_key"] == ["root", "web", "640"]
    assert modes["shared/data"] == ["web", "web", "750"]
    assert modes["releases"] == ["root", "root", "755"]
    assert modes["current/"][:2] == ["root", "root"] and modes["current/venv/"][:2] == ["root", "root"]
    assert modes[f"/etc/systemd/system/{PROJECT}.service"] == ["root", "root", "644"]
    release = fleet.ssh(host, f"readlink /srv/{PROJECT}/current").stdout.strip()
    assert re.fullmatch(r"releases/[0-9a-f]{12}", release)
    shell = fleet.ssh(host, "getent passwd web | cut -d: -f7").stdout.strip()
    assert shell == "/usr/sbin/nologin"


def test_journal_shows_gunicorn_starting(fleet, deployed):
    for host in fleet.hosts:
        log = fleet.ssh(host, f"journalctl -u {PROJECT} --no-pager -o cat").stdout
        assert "Starting gunicorn" in log, host["machine"]
        assert f"Listening at: unix:/srv/{PROJECT}/socket/gunicorn.sock " in log, log[-1000:]  # behind the front


def test_each_group_listens_its_way(fleet, deployed):
    """web: systemd's socket holds gunicorn's unix socket, no capability; staging: the
    seed's unit, gunicorn binds it. The front (Caddy) holds the site's port. Nothing of the
    app listens on TCP: no other local user can take its address (tests/test_adversarial.py)."""
    for host in fleet.hosts:
        unit = fleet.ssh(host, f"systemctl show -p AmbientCapabilities -p Requires {PROJECT}.service").stdout
        sockets = fleet.ssh(host, f"ss -Hlxp | grep -F ' /srv/{PROJECT}/socket/gunicorn.sock '").stdout
        assert sockets.split()[4] == f"/srv/{PROJECT}/socket/gunicorn.sock", sockets  # u_str LISTEN 0 N path
        assert "gunicorn" not in fleet.ssh(host, "ss -Hltnp").stdout  # no TCP port of the app's
        folder = fleet.ssh(host, f"stat -c '%U %G %a' /srv/{PROJECT}/socket; getfacl -cp /srv/{PROJECT}/socket").stdout
        user = USERS[host["group"]]
        assert folder.split("\n")[0] == f"{user} {user} 750" and "user:caddy:--x" in folder, folder
        front = fleet.ssh(host, f"ss -Hltnp 'sport = :{PORTS[host['group']]}'").stdout
        assert '"caddy"' in front and "gunicorn" not in front, front
        if host["group"] == "web":
            assert "AmbientCapabilities=\n" in unit and f"{PROJECT}.socket" in unit
            assert fleet.ssh(host, f"systemctl is-active {PROJECT}.socket").stdout.strip() == "active"
            assert '"systemd",pid=1' in sockets  # held by PID 1 across restarts
        else:
            assert "AmbientCapabilities=cap_net_bind_service\n" in unit
            assert fleet.ssh(host, f"systemctl is-active {PROJECT}.socket", check=False).stdout.strip() != "active"
            assert "systemd" not in sockets and "gunicorn" in sockets


def test_second_deploy_changes_nothing(fleet, deployed):
    # The fleet as this checkout deploys it: other test files on this worker's fleet may
    # have left it at another release (their last step restores, but in any order).
    first = run_pyinfra("-y")
    assert first.returncode == 0, first.stdout[-3000:]
    started = time.monotonic()
    result = run_pyinfra("-y")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:]
    rows = results(result.stdout)
    changed = {name: row["changed"] for name, row in rows.items() if row["changed"]}
    assert changed == {}, changed
    assert rows["Grand total"]["error"] == 0
    assert rows["Enable and start the app"]["hosts"] == 3
    print(f"\nno-op redeploy of 3 hosts: {elapsed:.1f} s")


def test_dry_run_shows_a_template_change_and_changes_nothing(fleet, deployed, project_copy):
    run_template = project_copy / "templates" / "run.j2"
    run_template.write_text(run_template.read_text() + "# reviewed by the dry-run test\n")
    web = fleet.by_group("web")[0]
    before = fleet.fingerprint(web)
    run_before = fleet.ssh(web, f"sha256sum /srv/{PROJECT}/run").stdout

    result = run_pyinfra("--dry", "--diff", cwd=project_copy)
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout
    assert re.search(rf"\[{web['address']}\]\s+Will modify /srv/{PROJECT}/run$", out, re.M), out[-3000:]
    assert re.search(r"^\s*\+ # reviewed by the dry-run test$", out, re.M), out[-3000:]
    # Every host's run script would change, so each would restart, batch by batch.
    assert re.search(r"^\s*run script\s+3 \(", out, re.M), out[-3000:]
    assert re.search(r"^\s*Switch to the release\s+-\s+3 \(", out, re.M), out[-3000:]
    assert re.search(r"^\s*Release\s+-\s+-\s*$", out, re.M), out[-3000:]

    assert fleet.ssh(web, f"sha256sum /srv/{PROJECT}/run").stdout == run_before
    assert "reviewed by the dry-run test" not in fleet.ssh(web, f"cat /srv/{PROJECT}/run").stdout
    assert fleet.fingerprint(web) == before


def test_a_stopped_service_is_started_again(fleet, deployed):
    web = fleet.by_group("web")[1]
    fleet.ssh(web, f"systemctl stop {PROJECT}.service")
    result = run_pyinfra("-y", "--limit", web["address"])
    assert result.returncode == 0, result.stdout[-3000:]
    assert results(result.stdout)["Enable and start the app"]["changed"] == 1
    assert wait_http_200(f"http://{web['address']}/healthz")[0] == 200


def test_a_host_rebooted_from_inside_serves_again(fleet, deployed):
    staging = fleet.by_group("staging")[0]
    boot_id = fleet.ssh(staging, "cat /proc/sys/kernel/random/boot_id").stdout
    fleet.ssh(staging, "systemctl reboot", check=False)
    url = f"http://{staging['address']}:8080/healthz"
    deadline = time.monotonic() + 60
    while http_get(url, timeout=2)[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for it to go down first
    status, body = wait_http_200(url, timeout=120)
    assert status == 200, body
    # A real reboot: systemd started again and brought the enabled unit up by itself.
    assert fleet.ssh(staging, "cat /proc/sys/kernel/random/boot_id").stdout != boot_id
    assert fleet.ssh(staging, f"systemctl is-active {PROJECT}").stdout.strip() == "active"


def test_the_listen_mode_changes_both_ways_and_the_app_serves(fleet, deployed):
    """ambient -> socket -> ambient on the staging host: the unit that says who holds the
    port goes in place with the listener (not with the switch), so the app serves after each
    run, with the capability and the socket unit its mode needs; a third run changes nothing."""
    staging = fleet.by_group("staging")[0]
    url = f"http://{staging['address']}:8080/healthz"
    try:
        for mode, socket_state in (("socket", "active"), ("ambient", "inactive")):
            result = run_pyinfra("-y", "--limit", staging["address"], "--data", f"listen={mode}")
            assert result.returncode == 0, result.stdout[-3000:]
            assert wait_http_200(url, timeout=30)[0] == 200, mode
            states = fleet.ssh(staging, f"systemctl is-active {PROJECT}.service {PROJECT}.socket || true").stdout.split()
            assert states == ["active", socket_state], (mode, states)
            unit = fleet.ssh(staging, f"cat /etc/systemd/system/{PROJECT}.service").stdout
            assert ("AmbientCapabilities=CAP_NET_BIND_SERVICE" in unit) is (mode == "ambient"), mode
            again = run_pyinfra("-y", "--limit", staging["address"], "--data", f"listen={mode}")
            assert results(again.stdout)["Grand total"]["changed"] == 0, (mode, again.stdout[-3000:])
    finally:
        assert run_pyinfra("-y", "--limit", staging["address"]).returncode == 0  # ambient, as group_data says


SPEED_BLOCKED = """import sys


class Blocked:  # djdeploy/speed cannot be imported in this process
    def find_spec(self, name, path=None, target=None):
        if name == "djdeploy.speed" or name.startswith("djdeploy.speed."):
            raise ImportError("djdeploy.speed is blocked in this test")


sys.meta_path.insert(0, Blocked())
"""


def test_plain_pyinfra_deploys_with_the_speed_ups_unimportable(fleet, deployed, tmp_path):
    """DJDEPLOY_SPEED=off, and djdeploy/speed cannot even be imported: a deploy of new code
    still works. Every use of pyinfra's private names is under speed/ (tests/test_layout.py),
    so a pyinfra upgrade that drops one breaks the speed-ups only, and this is the way on."""
    from conftest import app_version

    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(SPEED_BLOCKED)
    env = {"DJDEPLOY_SPEED": "off", "PYTHONPATH": str(blocker)}
    import os
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import djdeploy.speed"], capture_output=True, text=True,
                           env={**os.environ, **env})
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the block holds
    project = app_version(tmp_path / "p", "plain-pyinfra")
    try:
        result = run_pyinfra("-y", cwd=project, env=env)
        assert result.returncode == 0, result.stdout[-3000:]
        for host in fleet.hosts:
            status, body = wait_http_200(f"http://{host['address']}:{PORTS[host['group']]}/", timeout=30)
            assert status == 200 and "Django plain-pyinfra behind gunicorn" in body, body[:300]
    finally:
        assert run_pyinfra("-y").returncode == 0  # the fleet as the other tests expect it
