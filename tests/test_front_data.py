"""The front door's data (domain, tls, hsts, acme_*, app_port) checked and rendered, without a fleet."""

import os

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from conftest import ROOT
from djdeploy.config.settings import parse
from djdeploy.errors import DataError

BASE = {"app_user": "web", "port": 80}
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def render(name, s):
    env = Environment(loader=FileSystemLoader(ROOT), undefined=StrictUndefined, keep_trailing_newline=True)
    return env.get_template(f"templates/{name}").render(s=s, py=repr)


def problems(data) -> list:
    with pytest.raises(DataError) as caught:
        parse("web1", {**BASE, **data}, ["web"])
    return caught.value.problems


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_no_domain_is_plain_http_on_port_through_the_front():
    s = parse("web1", BASE, ["web"])
    assert (s.tls, s.https, s.site_address, s.app_socket) == ("off", False, "http://:80",
                                                              "/srv/my_awesome_project/socket/gunicorn.sock")
    site = render("site.caddy.j2", s)
    assert "http://:80 {" in site and "reverse_proxy unix//srv/my_awesome_project/socket/gunicorn.sock" in site
    assert "lb_try_duration 30s" in site
    assert "SECURE_SSL_REDIRECT" not in render("settings.py.j2", s)


def test_a_domain_is_https_by_acme_with_django_told():
    s = parse("web1", {**BASE, "domain": "shop.example.com", "hsts": 31536000}, ["web"])
    assert (s.tls, s.site_address, s.allowed_hosts[0]) == ("acme", "shop.example.com", "shop.example.com")
    assert "https://shop.example.com" in s.csrf_origins
    settings = render("settings.py.j2", s)
    for line in ("SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')", "SECURE_SSL_REDIRECT = True",
                 "SESSION_COOKIE_SECURE = True", "CSRF_COOKIE_SECURE = True", "SECURE_HSTS_SECONDS = 31536000"):
        assert line in settings
    site = render("site.caddy.j2", s)
    assert site.count("Strict-Transport-Security") == 1 and "defer" in site
    # The health check asks as the front does: X-Forwarded-Proto: https.
    from djdeploy.ops.releases import tool_env
    assert "HTTPS=1" in tool_env(s)


def test_keep_app_settings_leaves_a_tls_setting_as_the_app_has_it():
    s = parse("web1", {**BASE, "domain": "shop.example.com", "keep_app_settings": ["SECURE_SSL_REDIRECT"]}, ["web"])
    settings = render("settings.py.j2", s)
    assert "SECURE_SSL_REDIRECT" not in settings and "SESSION_COOKIE_SECURE = True" in settings


def test_tls_off_with_a_domain_is_plain_http():
    s = parse("web1", {**BASE, "domain": "shop.example.com", "tls": "off"}, ["web"])
    assert (s.https, s.site_address) == (False, "http://:80")


def test_your_own_certificate_files(tmp_path):
    (tmp_path / "c.pem").write_text(CERT)
    (tmp_path / "k.pem").write_text(KEY)
    s = parse("web1", {**BASE, "domain": "shop.example.com",
                       "tls": {"certificate": str(tmp_path / "c.pem"), "key": str(tmp_path / "k.pem")}}, ["web"])
    assert s.tls == "files" and s.tls_files == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    assert f"tls {s.certificate_file} {s.key_file}" in render("site.caddy.j2", s)


@pytest.mark.parametrize("data, said", [
    ({"domain": "Shop.Example.com"}, "domain = 'Shop.Example.com': not a valid value: a lower-case DNS name"),
    ({"domain": "localhost"}, "domain = 'localhost': not a valid value"),
    ({"tls": "on"}, "tls = 'on'"),
    ({"tls": {"certificate": "nope.pem", "key": "nope.key"}},
     "tls holds certificate files but domain is not set"),
    ({"domain": "a.example.com", "tls": {"certificate": "nope.pem", "key": "nope.key"}},
     "tls.certificate = 'nope.pem': not a file here"),
    ({"acme_ca": "http://ca.example/dir"}, "acme_ca = 'http://ca.example/dir': not a valid value: an https:// URL"),
    ({"acme_ca_root": "group_data/all.py"}, "acme_ca_root = 'group_data/all.py': holds no PEM certificate"),
    ({"acme_ca_root": "missing.pem"}, "acme_ca_root = 'missing.pem': not a file here"),
    ({"acme_email": "not an address"}, "acme_email = 'not an address': not a valid value"),
    ({"app_port": 8000}, "app_port: no longer a data key: the front reaches gunicorn on a unix socket"),
    ({"static_url": "static"}, "static_url = 'static': not a valid value: a path such as /static/"),
    ({"hsts": -1}, "hsts = -1"),
])
def test_wrong_front_data_is_one_line_naming_the_key(data, said):
    found = problems(data)
    assert said in found[0] and all(line.startswith("host web1 (group web): ") for line in found), found
    assert len(found) == (2 if "nope.pem" in said else 1), found  # each file its line


def test_a_key_file_that_holds_no_key_is_refused(tmp_path):
    (tmp_path / "c.pem").write_text(CERT)
    (tmp_path / "k.pem").write_text(CERT)
    found = problems({"domain": "a.example.com",
                      "tls": {"certificate": str(tmp_path / "c.pem"), "key": str(tmp_path / "k.pem")}})
    assert found == [f"host web1 (group web): tls.key = {str(tmp_path / 'k.pem')!r}: holds no PEM private key"]


def test_what_caddy_last_took_is_compared_with_the_files_in_place(tmp_path):
    """FrontApplied, run by sh as pyinfra runs facts: the digest front.sh noted when Caddy took
    the files, then the files' digest, which is front.sh's own (`front.sh digest`), under the
    locale sshd gives a session (a glob sorted by bash under en_US differs from dash's byte
    order); a file changed since (a reload that was refused) makes them differ."""
    import shutil
    import subprocess

    from djdeploy.ops.facts import FrontApplied

    locales = tmp_path / "locales"
    locales.mkdir()
    made = subprocess.run(["localedef", "-i", "en_US", "-f", "UTF-8", str(locales / "en_US.UTF-8")],
                          capture_output=True, text=True)
    assert made.returncode in (0, 1) and (locales / "en_US.UTF-8").is_dir(), made.stderr  # 1: warnings only
    session = {"PATH": os.environ["PATH"], "LOCPATH": str(locales), "LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8"}
    front = tmp_path / "front"
    (front / "sites").mkdir(parents=True)
    (front / "certs").mkdir()
    for name in ("Caddyfile", "sites/shop.caddy", "sites/shop_api.caddy", "sites/shopa.caddy", "certs/shop.pem"):
        (front / name).write_text(name)
    (tmp_path / "unit.conf").write_text("[Service]\n")
    tool = shutil.copy(ROOT / "files" / "front.sh", front / "front.sh")
    fact = FrontApplied()

    def ask():
        out = subprocess.run(["sh", "-c", fact.command(str(front), str(tmp_path / "unit.conf"))],
                             capture_output=True, text=True, env=session).stdout
        return fact.process(out.splitlines())

    def digest():
        out = subprocess.run(["bash", tool, "digest"], capture_output=True, text=True, check=True,
                             env={**session, "FRONT_DROPIN": str(tmp_path / "unit.conf")})
        return out.stdout.strip()

    assert ask() == []  # never applied: no marker
    (front / ".applied").write_text(digest() + "\n")
    assert ask() == [digest(), digest()]
    (front / "sites/shop.caddy").write_text("changed, not taken")
    first, now = ask()
    assert first != now == digest()
    (tmp_path / "unit.conf").write_text("[Service]\nchanged\n")  # the unit's drop-in counts too
    assert ask()[1] == digest() != now


def test_each_project_names_its_own_acme_ca_and_email(tmp_path):
    """Two projects on one host: each site carries its own CA, CA root and e-mail (they were
    host-wide global options, taken from whichever project deployed last)."""
    (tmp_path / "root.pem").write_text(CERT)
    a = parse("web1", {**BASE, "project": "shop", "domain": "shop.example.com", "acme_email": "ops@shop.example",
                       "acme_ca": "https://ca.internal/dir", "acme_ca_root": str(tmp_path / "root.pem")}, ["web"])
    b = parse("web1", {**BASE, "project": "blog", "domain": "blog.example.com"}, ["web"])
    shop, blog = render("site.caddy.j2", a), render("site.caddy.j2", b)
    assert "tls ops@shop.example {" in shop and "ca https://ca.internal/dir" in shop
    assert f"ca_root {a.acme_root_file}" in shop and a.acme_root_file != b.acme_root_file
    assert "tls" not in blog.replace("HTTPS", "")  # Caddy's defaults: Let's Encrypt, no e-mail
    for caddyfile in (render("Caddyfile.j2", a), render("Caddyfile.j2", b)):
        options = [line for line in caddyfile.splitlines() if not line.strip().startswith("#")]
        assert not [line for line in options if "acme_ca" in line or "email" in line], options


def fake_front(tmp_path, validate_ok=True, start_ok=True):
    """files/front.sh beside a Caddyfile, with caddy, systemctl, journalctl and ss faked on
    PATH: each call logged to `calls`."""
    import shutil

    front, bin_dir = tmp_path / "front", tmp_path / "bin"
    (front / "sites").mkdir(parents=True)
    bin_dir.mkdir()
    (front / "Caddyfile").write_text("import sites/*.caddy\n")
    (front / "sites" / "shop.caddy").write_text(":80 {}\n")
    calls = tmp_path / "calls"
    fakes = {
        "caddy": "" if validate_ok else 'echo \'Error: adapting config: unrecognized directive: revers_proxy\'; exit 1',
        "systemctl": "" if start_ok else 'case "$*" in *restart*|*start*) exit 1;; esac',
        "journalctl": "echo 'Error: loading config: listen tcp :80: bind: address already in use'",
        "ss": "echo 'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:((\"nginx\",pid=77,fd=6))'",
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n{body}\n')
        (bin_dir / name).chmod(0o755)
    tool = shutil.copy(ROOT / "files" / "front.sh", front / "front.sh")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FRONT_DROPIN": str(tmp_path / "none.conf")}
    return front, tool, env, calls


@pytest.mark.parametrize("action, wanted", [
    ("restart", ["systemctl daemon-reload", "systemctl restart caddy.service"]),
    ("reload", ["systemctl reload-or-restart caddy.service"]),
    ("start", ["systemctl daemon-reload", "systemctl start caddy.service"]),
])
def test_the_front_takes_a_configuration_caddy_accepted_and_notes_it(tmp_path, action, wanted):
    import subprocess

    front, tool, env, calls = fake_front(tmp_path)
    out = subprocess.run(["bash", tool, action, "80"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert calls.read_text().splitlines() == [
        f"caddy validate --config {front}/Caddyfile --adapter caddyfile", *wanted]
    digest = subprocess.run(["bash", tool, "digest"], capture_output=True, text=True, env=env).stdout
    assert (front / ".applied").read_text() == digest


def test_a_configuration_caddy_refuses_is_one_line_and_the_running_one_stays(tmp_path):
    import subprocess

    front, tool, env, calls = fake_front(tmp_path, validate_ok=False)
    out = subprocess.run(["bash", tool, "reload", "80"], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert out.stderr == ("the front's configuration was refused by caddy, the running one stays: "
                          "Error: adapting config: unrecognized directive: revers_proxy\n")
    assert "systemctl" not in calls.read_text() and not (front / ".applied").exists()


def test_a_front_that_cannot_start_says_why_and_who_holds_the_port(tmp_path):
    import subprocess

    front, tool, env, _ = fake_front(tmp_path, start_ok=False)
    out = subprocess.run(["bash", tool, "start", "80", "443"], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert out.stderr == ("the front door (caddy.service) did not start: Error: loading config: listen tcp :80: "
                          "bind: address already in use (journalctl -u caddy); port 80 or 443 held by: "
                          "\"nginx\",pid=77 \n")
    assert not (front / ".applied").exists()
    bad = subprocess.run(["bash", tool, "start", "80;reboot"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and bad.stderr == "front.sh: not a port: 80;reboot\n"
