"""HTTPS at the front door against a real ACME CA, offline: Pebble (Let's Encrypt's test
CA, from Debian) runs on this machine's side of a fleet of its own (fleet/acme.py) and
resolves the host's name to it. First the CA itself (on the fleet side only, trusted
through the listener CA it is given, resolving the caller's names, gone after `stop`);
then issuance by a real HTTP-01 challenge, HTTP/2, the redirect, HSTS, Django's TLS
settings, a no-op that orders nothing, a renewal before expiry, the user's own
certificate files, and tls = "off". One file: a machine runs one Pebble at a time.
"""

import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from conftest import PROJECT, ROOT, own_fleet, results, run_pyinfra
from fleet import acme as fleet_acme

pytestmark = pytest.mark.fleet

FLEET = "tls"
VALIDITY = 120  # seconds of each certificate: Caddy renews it in its last third


# --- The CA itself (fleet/acme.py), before the fleet's tests start it --------------------------

def get(url, cafile):
    context = ssl.create_default_context(cafile=str(cafile))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                          urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=5) as response:
        return response.read().decode()


def listening(port):
    return subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.fixture
def acme():
    from fleet import acme as fleet_acme

    if fleet_acme.pebble_pid() is not None:
        pytest.skip("a pebble is already running on this machine (`python -m fleet.acme down`)")
    started = fleet_acme.start({"web1.fleet.test": "169.254.1.2"}, validity=120)
    try:
        yield started
    finally:
        fleet_acme.stop()


def test_pebble_serves_acme_on_the_fleet_side_only_and_resolves_the_given_names(acme):
    from fleet.acme import ACME_DIR, FleetError, check_names

    directory = get(acme.directory, acme.ca_root_file)
    assert '"newOrder"' in directory and "https://169.254.254.1:14000/" in directory
    roots = acme.issuing_roots()
    assert roots.startswith("-----BEGIN CERTIFICATE-----") and roots.count("BEGIN CERTIFICATE") == 1
    assert "BEGIN CERTIFICATE" in acme.intermediates()
    for port in (14000, 15000):
        assert [w for w in listening(port) if w.endswith(f":{port}")] == [f"169.254.254.1:{port}"]
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # not a public CA
        get(acme.directory, ssl.get_default_verify_paths().openssl_cafile)

    # The names resolve inside pebble's own mount namespace, not on this machine.
    resolved = subprocess.run(["nsenter", "-t", str(acme.pid), "-m", "getent", "hosts", "web1.fleet.test"],
                              capture_output=True, text=True)
    assert resolved.stdout.split() == ["169.254.1.2", "web1.fleet.test"]
    with pytest.raises(OSError):
        socket.gethostbyname("web1.fleet.test")
    assert '"certificateValidityPeriod": 120' in (ACME_DIR / "pebble.json").read_text()

    with pytest.raises(FleetError, match="not a fleet address"):
        check_names({"web1.fleet.test": "10.0.0.1"})


def test_stop_leaves_nothing_and_a_stale_pebble_is_cleared():
    from fleet import acme as fleet_acme
    from fleet.acme import ACME_DIR

    if fleet_acme.pebble_pid() is not None:
        pytest.skip("a pebble is already running on this machine")
    first = fleet_acme.start({"web1.fleet.test": "169.254.1.2"})
    os.kill(first.pid, 9)  # a killed session: its files stay behind
    os.waitpid(first.pid, 0)
    assert ACME_DIR.exists() and fleet_acme.pebble_pid() is None
    second = fleet_acme.start({"web2.fleet.test": "169.254.1.3"})  # clears it and starts
    assert "BEGIN CERTIFICATE" in second.issuing_roots()
    with pytest.raises(fleet_acme.FleetError, match="already running"):
        fleet_acme.start({"web1.fleet.test": "169.254.1.2"})
    fleet_acme.stop()
    assert not ACME_DIR.exists() and fleet_acme.pebble_pid() is None
    assert not listening(14000) and not listening(15000)
    assert not pebble_processes()


def pebble_processes():
    from fleet.acme import ACME_DIR

    found = []
    for proc in os.scandir("/proc"):
        try:
            with open(os.path.join(proc.path, "cmdline"), "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if b"pebble" in cmdline and str(ACME_DIR).encode() in cmdline:
            found.append(int(proc.name))
    return found


# --- HTTPS at the front door -----------------------------------------------------------------

@pytest.fixture(scope="module")
def https(tmp_path_factory):
    """A one-host fleet whose host has a domain, deployed once; Pebble issues its certificates."""
    with own_fleet(FLEET, 1, "bookworm") as fleet:
        host = fleet.hosts[0]
        domain = f"{host['machine']}.fleet.test"
        ca = fleet_acme.start({domain: host["address"]}, validity=VALIDITY)
        try:
            roots = tmp_path_factory.mktemp("acme") / "roots.pem"
            roots.write_text(ca.issuing_roots())
            data = ["--data", f"domain={domain}", "--data", f"acme_ca={ca.directory}",
                    "--data", f"acme_ca_root={ca.ca_root_file}", "--data", "acme_email=ops@fleet.test",
                    "--data", "hsts=300", "--data", "acme_renew_interval=5s"]
            first = run_pyinfra("-y", *data, fleet=FLEET)
            assert first.returncode == 0, first.stdout[-3000:]
            yield SimpleNamespace(fleet=fleet, host=host, domain=domain, ca=ca, data=data, roots=roots)
        finally:
            ca.stop()


def peer(ns, cafile, timeout=5.0) -> dict:
    """The certificate the host serves for its domain, verified against `cafile`."""
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((ns.host["address"], 443), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=ns.domain) as tls:
            return tls.getpeercert()


def wait_for_certificate(ns, timeout=90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return peer(ns, ns.roots)
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def curl(ns, url, *args) -> tuple[str, str]:
    """(status and HTTP version, headers) of one request to the host by its domain name."""
    port = 443 if url.startswith("https") else 80
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(ns.roots), "--resolve",
                          f"{ns.domain}:{port}:{ns.host['address']}", "-o", "/dev/null", "-D", "-",
                          "-w", "\n%{http_code} %{http_version}", *args, url],
                         capture_output=True, text=True, timeout=30)
    headers, _, last = out.stdout.rpartition("\n")
    return last, headers


def obtained(ns) -> int:
    """How many certificates Caddy has obtained on the host (orders that completed)."""
    journal = ns.fleet.ssh(ns.host, "journalctl -u caddy --no-pager -q -o cat").stdout
    return journal.count('"certificate obtained successfully"')


def test_a_domain_gets_a_certificate_by_acme_https_http2_a_redirect_and_hsts(https):
    certificate = wait_for_certificate(https)
    issuer = dict(pair[0] for pair in certificate["issuer"])
    assert "Pebble" in issuer["commonName"]
    assert ("DNS", https.domain) in certificate["subjectAltName"]
    assert curl(https, f"https://{https.domain}/")[0] == "200 2"  # HTTP/2, by ALPN
    answer, headers = curl(https, f"http://{https.domain}/some/page?x=1")
    assert answer.startswith("308 ") and re.search(rf"(?im)^location: https://{re.escape(https.domain)}/some/page\?x=1\r?$",
                                                   headers), headers
    _, headers = curl(https, f"https://{https.domain}/")
    assert re.findall(r"(?im)^strict-transport-security: (.*?)\r?$", headers) == ["max-age=300"]  # once
    # The certificate's key: Caddy's, in its own storage; never the app user's, never in a release.
    keys = https.fleet.ssh(https.host, "find /var/lib/caddy -name '*.key' -printf '%m %u %p\\n'").stdout.split()
    keys = [keys[i:i + 3] for i in range(0, len(keys), 3)]
    assert len(keys) >= 2 and all(mode == "600" and owner == "caddy" for mode, owner, _ in keys), keys  # account, site
    app_user = https.host["group"]
    for _, _, path in keys:
        read = https.fleet.ssh(https.host, f"runuser -u {app_user} -- cat {path}", check=False)
        assert read.returncode != 0 and "Permission denied" in read.stderr
    assert https.fleet.ssh(https.host, f"grep -rlI -e '-----BEGIN [A-Z ]*PRIVATE KEY-----' /srv/{PROJECT} || true").stdout == ""

    # A no-op: nothing changes, no new order, the same certificate.
    orders = obtained(https)
    noop = run_pyinfra("-y", *https.data, fleet=FLEET)
    assert noop.returncode == 0 and results(noop.stdout)["Grand total"]["changed"] == 0, noop.stdout[-3000:]
    assert obtained(https) == orders == 1
    assert peer(https, https.roots)["serialNumber"] == certificate["serialNumber"]


def test_django_knows_it_is_behind_tls(https):
    """check --deploy on the host raises none of the TLS warnings (W004 HSTS, W008 SSL
    redirect, W012 session cookie, W016 CSRF cookie), and the app builds https URLs."""
    checked = subprocess.run([sys.executable, "exec.py", "all", "--", "check", "--deploy"], cwd=ROOT,
                             env=dict(os.environ, DJDEPLOY_FLEET=FLEET), capture_output=True, text=True, timeout=120)
    out = checked.stdout + checked.stderr
    assert "System check identified" in out, out
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"security.{warning}" not in out, out
    wait_for_certificate(https)
    scheme = subprocess.run([sys.executable, "exec.py", "all", "--", "shell", "-c",
                             "from django.conf import settings as s; print(s.SECURE_PROXY_SSL_HEADER, "
                             "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.CSRF_TRUSTED_ORIGINS)"],
                            cwd=ROOT, env=dict(os.environ, DJDEPLOY_FLEET=FLEET), capture_output=True, text=True,
                            timeout=120).stdout
    assert "('HTTP_X_FORWARDED_PROTO', 'https') True True" in scheme and f"'https://{https.domain}'" in scheme


def test_the_certificate_is_renewed_before_it_expires(https):
    """Pebble issues certificates for VALIDITY seconds; Caddy, checking every 5 s here
    (acme_renew_interval), renews in the last third, with nothing else done."""
    first = wait_for_certificate(https)
    expires = ssl.cert_time_to_seconds(first["notAfter"])
    renewed = first
    while renewed["serialNumber"] == first["serialNumber"] and time.time() < expires:
        time.sleep(2)
        renewed = peer(https, https.roots)
    assert renewed["serialNumber"] != first["serialNumber"], "not renewed before the certificate expired"
    print(f"\nrenewed {expires - time.time():.0f} s before the old certificate expired")
    assert ssl.cert_time_to_seconds(renewed["notAfter"]) > expires


def test_your_own_certificate_and_key(https, tmp_path):
    """tls = {certificate, key}: files from this machine. The key is never printed (not even
    by --dry --diff), is root:caddy 0640 on the host, and the app user cannot read it."""
    cert, key = tmp_path / "site.pem", tmp_path / "site.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={https.domain}", "-addext", f"subjectAltName=DNS:{https.domain}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    secret_line = key.read_text().splitlines()[1]
    data = [*https.data, "--data", f'tls={{"certificate": "{cert}", "key": "{key}"}}']
    dry = run_pyinfra("--dry", "--diff", *data, fleet=FLEET)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert secret_line not in dry.stdout and "PRIVATE KEY" not in dry.stdout
    done = run_pyinfra("-y", "-vvv", *data, fleet=FLEET)
    assert done.returncode == 0, done.stdout[-3000:]
    assert secret_line not in done.stdout and "PRIVATE KEY" not in done.stdout
    on_host = https.fleet.ssh(https.host, f"stat -c '%a %U %G' /etc/caddy/djdeploy/certs/{PROJECT}.key").stdout.strip()
    assert on_host == "640 root caddy"
    read = https.fleet.ssh(https.host, f"runuser -u {https.host['group']} -- cat /etc/caddy/djdeploy/certs/{PROJECT}.key",
                           check=False)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    served = peer(https, cert)
    assert dict(pair[0] for pair in served["issuer"])["commonName"] == https.domain  # ours, self-signed
    noop = run_pyinfra("-y", *data, fleet=FLEET)
    assert results(noop.stdout)["Grand total"]["changed"] == 0, noop.stdout[-3000:]


def test_tls_off_is_plain_http_on_port_80(https):
    done = run_pyinfra("-y", *https.data, "--data", "tls=off", fleet=FLEET)
    assert done.returncode == 0, done.stdout[-3000:]
    assert curl(https, f"http://{https.domain}/")[0] == "200 1.1"  # no redirect
    with pytest.raises(OSError):
        socket.create_connection((https.host["address"], 443), timeout=3).close()


def test_a_balancer_has_the_domains_certificate_and_the_web_host_behind_it_none(tmp_path):
    """An lb host and a web host: the balancer's front gets the domain's one certificate by
    ACME, speaks HTTP/2, redirects HTTP and sends HSTS once; the web host behind it serves
    the balancer plain HTTP, holds no certificate and listens on no 443, and Django there
    knows a request came by HTTPS (with SECURE_SSL_REDIRECT on, it would redirect, not 200)."""
    with own_fleet("tlslb", 2, "bookworm", groups="lb,web") as fleet:
        lb, web = fleet.by_group("lb")[0], fleet.by_group("web")[0]
        domain = f"{lb['machine']}.fleet.test"
        fleet_acme.stop()  # the module's CA, if its tests left it running: one Pebble at a time
        ca = fleet_acme.start({domain: lb["address"]}, validity=VALIDITY)
        try:
            roots = tmp_path / "roots.pem"
            roots.write_text(ca.issuing_roots())
            data = ["--data", f"domain={domain}", "--data", f"acme_ca={ca.directory}",
                    "--data", f"acme_ca_root={ca.ca_root_file}", "--data", "acme_email=ops@fleet.test",
                    "--data", "hsts=300"]
            done = run_pyinfra("-y", *data, fleet="tlslb")
            assert done.returncode == 0, done.stdout[-3000:]
            ns = SimpleNamespace(fleet=fleet, host=lb, domain=domain, roots=roots)
            certificate = wait_for_certificate(ns)
            assert ("DNS", domain) in certificate["subjectAltName"]
            deadline = time.monotonic() + 30  # the web host in the balancer (2 health checks passed)
            while curl(ns, f"https://{domain}/")[0] != "200 2" and time.monotonic() < deadline:
                time.sleep(0.5)
            assert curl(ns, f"https://{domain}/")[0] == "200 2"
            answer, headers = curl(ns, f"http://{domain}/a/page")
            assert answer.startswith("308 ") and f"https://{domain}/a/page" in headers, headers
            _, headers = curl(ns, f"https://{domain}/")
            assert re.findall(r"(?im)^strict-transport-security: (.*?)\r?$", headers) == ["max-age=300"]
            assert obtained(ns) == 1
            assert obtained(SimpleNamespace(fleet=fleet, host=web)) == 0
            assert ":443" not in fleet.ssh(web, "ss -Hltn").stdout
            assert fleet.ssh(web, "find /var/lib/caddy -name '*.crt' | wc -l").stdout.strip() == "0"
        finally:
            ca.stop()
