"""The hardened unit on real hosts: systemd's own score, the running processes'
capabilities, and what the app can and cannot write, with the app fully working."""

import json
import re

import pytest

from conftest import PROJECT, http_get, wait_http_200

PORTS = {"web": 80, "staging": 8080}
USERS = {"web": "web", "staging": "staging"}
# The seed's unit as published (AmbientCapabilities, User/Group, nothing else).
SEED_UNIT = f"""[Unit]
Description=gunicorn daemon
After=network.target

[Service]
EnvironmentFile=/srv/{PROJECT}/.env
WorkingDirectory=/srv/{PROJECT}/
ExecStart=/srv/{PROJECT}/run
AmbientCapabilities=CAP_NET_BIND_SERVICE
User=web
Group=web

[Install]
WantedBy=multi-user.target
"""


def exposure(text: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", text)
    assert match, text[-2000:]
    return float(match.group(1))


def service_pids(fleet, host) -> list[int]:
    """The gunicorn master (the unit's main process) and its workers."""
    main = fleet.ssh(host, f"systemctl show -p MainPID --value {PROJECT}.service").stdout.strip()
    workers = fleet.ssh(host, f"pgrep -P {main}", check=False).stdout.split()
    return [int(main), *map(int, workers)]


@pytest.mark.parametrize("group", ["web", "staging"])  # socket activation, AmbientCapabilities
def test_exposure_score_is_1_1_in_socket_mode_and_1_4_in_ambient_mode_at_most(fleet, deployed, group):
    host = fleet.by_group(group)[0]
    ours = exposure(fleet.ssh(host, f"systemd-analyze security {PROJECT}.service").stdout)
    fleet.ssh(host, f"cat > /root/seed.service <<'EOF'\n{SEED_UNIT}EOF")
    seed = exposure(fleet.ssh(host, "systemd-analyze security --offline=true /root/seed.service").stdout)
    print(f"\n{group} ({'socket' if group == 'web' else 'ambient'}): exposure {ours} (seed's unit {seed})")
    assert ours <= {"web": 1.1, "staging": 1.4}[group]  # no higher than before the sandbox became an include
    assert seed > 9.0  # the same tool, on the unit we started from


@pytest.mark.parametrize("group", ["web", "staging"])
def test_gunicorn_holds_only_the_capability_its_mode_needs(fleet, deployed, group):
    host = fleet.by_group(group)[0]
    pids = service_pids(fleet, host)
    assert len(pids) == 3, pids  # the master and 2 workers
    expected = "0000000000000000" if group == "web" else f"{1 << 10:016x}"  # CAP_NET_BIND_SERVICE is 10
    for pid in pids:
        status = fleet.ssh(host, f"cat /proc/{pid}/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Uid"].split()[1] != "0"
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            assert fields[cap].strip() == expected, (group, pid, cap, fields[cap])
        assert fields["NoNewPrivs"].strip() == "1"


def test_the_app_writes_only_its_data_folder(fleet, deployed):
    """Inside the service's own mount namespace, as its user: data/ is writable, the code,
    the venv, the project folder and the system are not."""
    host = fleet.by_group("web")[0]
    pid = service_pids(fleet, host)[0]
    root = f"/srv/{PROJECT}"
    probe = (f"nsenter -t {pid} -m -S $(id -u web) -G $(id -g web) -- sh -c "
             f"'for f in {root}/shared/data/probe {root}/probe {root}/current/probe "
             f"{root}/current/venv/probe {root}/shared/probe /etc/probe /usr/probe; do "
             "touch $f 2>/dev/null && echo \"$f written\" || echo \"$f refused\"; done; "
             f"rm -f {root}/shared/data/probe'")
    lines = fleet.ssh(host, probe).stdout.split("\n")
    outcome = dict(line.rsplit(" ", 1) for line in lines if line)
    assert outcome.pop(f"{root}/shared/data/probe") == "written"
    assert set(outcome.values()) == {"refused"}, outcome


def test_code_and_venv_are_roots_and_read_only_to_the_app(fleet, deployed):
    host = fleet.by_group("web")[0]
    root = f"/srv/{PROJECT}"
    # Anything under the release or its venv not owned by root, or writable by group/other:
    out = fleet.ssh(host, f"find -L {root}/current {root}/current/venv/ -xdev "
                          "\\( ! -user root -o -perm /022 \\) -print | head").stdout
    assert out == ""
    # And as the app user, outside any sandbox: plain permissions refuse too.
    out = fleet.ssh(host, f"runuser -u web -- sh -c 'touch {root}/current/manage.py "
                          f"{root}/current/venv/bin/python 2>&1; echo rc=$?'").stdout
    assert "rc=1" in out and out.count("Permission denied") == 2, out


def test_the_hardened_app_still_serves_pages_static_files_writes_and_logs(fleet, deployed):
    for host in fleet.hosts:
        base = f"http://{host['address']}:{PORTS[host['group']]}"
        status, page = wait_http_200(base + "/")
        assert status == 200
        css = re.search(r'href="(/static/[^"]+)"', page).group(1)
        assert http_get(base + css)[0] == 200
        import urllib.request

        request = urllib.request.Request(base + "/notes", data=f"text=hardened-{host['machine']}".encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        status, body = http_get(base + "/notes")
        assert status == 200
        assert f"hardened-{host['machine']}" in [n["text"] for n in json.loads(body)["notes"]]
        log = fleet.ssh(host, f"journalctl -u {PROJECT} --no-pager -n 50").stdout
        assert '"POST /notes HTTP/1.1" 201' in log, log[-1000:]
