"""The deploy's WSGI entry (files/djdeploy_wsgi.py) in front of a small Django app: its health
endpoint catches what keeps an app from serving, and it serves static files and uploads
safely. Each case runs in its own interpreter (Django's settings are per process)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

APP = {
    "shop/__init__.py": "",
    "shop/settings.py": """
        import os
        SECRET_KEY = "x"
        ALLOWED_HOSTS = ["good.example"]
        ROOT_URLCONF = "shop.urls"
        INSTALLED_APPS = ["django.contrib.contenttypes"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DB"]}}
        STATIC_URL = "static/"
        STATIC_ROOT = os.environ["STATIC"]
        MEDIA_URL = "/media/"
        MEDIA_ROOT = os.environ["MEDIA"]
    """,
    "shop/urls.py": """
        import os
        from django.http import HttpResponse
        from django.urls import path
        def home(request):
            if os.environ.get("BROKEN"):
                raise RuntimeError("the home page is broken")
            return HttpResponse("home")
        def ip(request):
            return HttpResponse(request.META["REMOTE_ADDR"])
        urlpatterns = [path("", home), path("ip", ip)]
    """,
    "shop/wsgi.py": """
        import os
        from django.core.wsgi import get_wsgi_application
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
        application = get_wsgi_application()
    """,
}

CALL = """
import io, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import djdeploy_wsgi
answers = []
for path, host, remote in json.loads(sys.argv[3]):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "x",
               "SERVER_PORT": "80", "HTTP_HOST": host, "REMOTE_ADDR": remote, "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, **json.loads(sys.argv[4])}
    seen = {}
    def start_response(status, headers, exc_info=None):
        seen.update(status=status, headers=dict(headers))
    body = b"".join(djdeploy_wsgi.application(environ, start_response))
    answers.append([seen["status"][:3], body.decode(errors="replace"), seen["headers"]])
print(json.dumps(answers))
"""


@pytest.fixture
def site(tmp_path):
    for name, text in APP.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    for folder in ("static", "media", "data"):
        (tmp_path / folder).mkdir()
    (tmp_path / "static" / "app.css").write_text("body{}")
    (tmp_path / "media" / "cat.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "media" / "café.txt").write_text("an upload with a non-ASCII name")
    (tmp_path / "media" / "a%20b.txt").write_text("a name with a percent sign")
    (tmp_path / "secret.txt").write_text("not for the web")
    (tmp_path / "static" / "out").symlink_to(tmp_path / "secret.txt")
    return tmp_path


def ask(site, requests, headers=None, **env):
    environ = {"DJDEPLOY_APP_WSGI": "shop.wsgi", "DB": str(site / "data" / "db.sqlite3"),
               "STATIC": str(site / "static"), "MEDIA": str(site / "media"), "PATH": "/usr/bin:/bin", **env}
    result = subprocess.run([sys.executable, "-c", CALL, str(site), str(ROOT / "files"), json.dumps(requests),
                             json.dumps(headers or {})],
                            capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def up(site, host="good.example", **env):
    return ask(site, [["/-/up", host, "127.0.0.1"]], **env)[0]


def test_a_serving_app_is_up(site):
    assert up(site)[:2] == ["200", "ok\n"]


def test_a_500_on_the_home_page_is_not_up(site):
    status, body, _ = up(site, BROKEN="1")
    assert status == "503" and "GET / with Host: good.example answered 500" in body


def test_a_refused_host_header_is_named(site):
    status, body, _ = up(site, host="169.254.1.2")
    assert status == "503" and "Host: 169.254.1.2 is not in the app's ALLOWED_HOSTS" in body and "DisallowedHost" in body


def test_an_unreachable_database_is_named(site):
    status, body, _ = up(site, DB=str(site / "no" / "such" / "folder" / "db.sqlite3"))
    assert status == "503" and body.startswith("database default (") and "unable to open database file" in body


def test_the_endpoint_is_the_apps_own_url_from_outside(site):
    status, _, _ = ask(site, [["/-/up", "good.example", "203.0.113.9"]])[0]
    assert status == "404"  # the app's URL routing answered, not the health check


def test_static_files_and_uploads_are_served(site):
    css, png = ask(site, [["/static/app.css", "good.example", "203.0.113.9"],
                          ["/media/cat.png", "good.example", "203.0.113.9"]])
    assert css[:2] == ["200", "body{}"] and css[2]["Content-Type"] == "text/css"
    assert png[0] == "200" and png[2]["Content-Type"] == "image/png"
    assert "sandbox" in png[2]["Content-Security-Policy"]  # an upload never runs as a page


@pytest.mark.parametrize("path", ["/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/out",
                                  "/media/..%2fsecret.txt", "/static/", "/static//etc/passwd"])
def test_no_file_outside_the_folders_is_served(site, path):
    status, body, _ = ask(site, [[path, "good.example", "203.0.113.9"]])[0]
    assert status == "404" and "not for the web" not in body and "root:" not in body


def test_names_are_read_as_the_server_decoded_them(site):
    """gunicorn has already percent-decoded PATH_INFO (as latin-1 text, PEP 3333)."""
    cafe, percent = ask(site, [["/media/café.txt".encode().decode("latin-1"), "good.example", "203.0.113.9"],
                               ["/media/a%20b.txt", "good.example", "203.0.113.9"]])
    assert cafe[:2] == ["200", "an upload with a non-ASCII name"]
    assert percent[:2] == ["200", "a name with a percent sign"]


def test_the_endpoint_refuses_requests_through_a_local_proxy(site):
    """Behind a proxy on the same host every request comes from 127.0.0.1: not the health check."""
    status, _, _ = ask(site, [["/-/up", "good.example", "127.0.0.1"]], headers={"HTTP_X_FORWARDED_FOR": "198.51.100.7"})[0]
    assert status == "404"


def test_serving_files_can_be_left_to_the_app(site):
    status, _, _ = ask(site, [["/media/cat.png", "good.example", "203.0.113.9"]], DJDEPLOY_SERVE_FILES="0")[0]
    assert status == "404"  # the app's URL routing answered


def test_an_app_without_a_wsgi_module_is_served_by_djangos_own_handler(site, tmp_path, monkeypatch):
    """django-tables2's example names no WSGI_APPLICATION and has no wsgi.py: it could not
    be deployed. As runserver does, Django's own handler serves it."""
    from djdeploy.config.keys import DJANGO_WSGI
    from djdeploy.config.settings import parse

    assert up(site, DJDEPLOY_APP_WSGI=DJANGO_WSGI, DJANGO_SETTINGS_MODULE="shop.settings")[:2] == ["200", "ok\n"]
    app = tmp_path / "flat"
    app.mkdir()
    (app / "manage.py").write_text('import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")\n')
    (app / "settings.py").write_text("ROOT_URLCONF = 'urls'\n")
    monkeypatch.chdir(tmp_path)
    s = parse("web1", {"app_user": "web", "port": 80, "app_path": "flat", "requirements": str(ROOT / "app" /
                                                                                                "requirements.txt")})
    assert (s.settings_module, s.wsgi_module) == ("settings", DJANGO_WSGI)


def test_the_app_sees_who_asked_through_the_front_on_its_unix_socket(site):
    """On the unix socket the peer has no address (gunicorn gives ""): django-allauth's rate
    limit refused every sign-up ("Unable to determine client IP address", 403). The front
    says who asked (X-Forwarded-For, set by Caddy, never taken from the client); the host's
    own requests (the health check) are 127.0.0.1, as over loopback before."""
    via_front, from_host = ask(site, [["/ip", "good.example", ""], ["/ip", "good.example", ""]],
                               headers={"HTTP_X_FORWARDED_FOR": "203.0.113.9"})[0], \
        ask(site, [["/ip", "good.example", ""]])[0]
    assert via_front[:2] == ["200", "203.0.113.9"] and from_host[:2] == ["200", "127.0.0.1"]
    assert ask(site, [["/-/up", "good.example", ""]])[0][:2] == ["200", "ok\n"]  # the deploy's probe on the socket
    through_front = ask(site, [["/-/up", "good.example", ""]], headers={"HTTP_X_FORWARDED_FOR": "203.0.113.9"})[0]
    assert through_front[0] == "404"  # from outside, through the front: the app's own URL routing
