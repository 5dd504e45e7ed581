"""The front door's data (domain, tls, hsts, acme_*, app_port) checked and rendered, without a fleet."""

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
    """FrontApplied, run by bash: the digest noted after a reload, then the files' digest;
    a file changed since (a reload that was refused) makes them differ."""
    import subprocess

    from djdeploy.ops.facts import FrontApplied

    (tmp_path / "sites").mkdir()
    for name in ("unit.conf", "Caddyfile", "sites/a.caddy"):
        (tmp_path / name).write_text(name)
    files = f"{tmp_path}/unit.conf {tmp_path}/Caddyfile {tmp_path}/sites/*.caddy"
    fact = FrontApplied()

    def ask():
        out = subprocess.run(["bash", "-c", fact.command(files)], capture_output=True, text=True).stdout
        return fact.process(out.splitlines())

    assert ask() == []  # never applied: no marker
    digest = subprocess.run(["bash", "-c", f"cat {files} | sha1sum | cut -c1-40"], capture_output=True,
                            text=True).stdout.strip()
    (tmp_path / ".applied").write_text(digest + "\n")
    assert ask() == [digest, digest]
    (tmp_path / "sites/a.caddy").write_text("changed, not taken")
    first, now = ask()
    assert first == digest and now != digest


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
