"""Real Django projects that nobody here wrote, deployed unmodified, by data alone, to stock
Debian 12 and 13 hosts (no python3-venv, before the deploy or after: the virtualenvs are made
without pip and filled by the deploy's pinned pip).

Both come from PyPI at test time, the registry CI reaches, exactly as their authors ship them:
- Django's own project template (`django-admin startproject`): the tutorial shape, with
  DEBUG = True, its insecure key, ALLOWED_HOSTS = [], SQLite beside manage.py, no
  STATIC_ROOT, and no gunicorn in its requirements;
- Wagtail's project template (`wagtail start`, Wagtail 7.2): a settings package whose
  manage.py names the dev settings, image uploads through Pillow, static and media folders
  inside the project, and requirements without gunicorn;
- ephios (a self-hosted app, MIT, its source distribution): twelve-factor, every setting
  from the environment (DATABASE_URL, SECRET_KEY, ...), a src/ layout, two dependencies
  published as source only, and a build step (`manage.py build`) that needs gettext.
"""

import http.cookiejar
import json
import re
import tarfile
import shlex
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, copy_project, http_get, own_fleet, results, run_pyinfra
from djdeploy.config.keys import OVERRIDES

FLEET = "apps"
WAGTAIL = "7.2.3"
EPHIOS = "0.27.1"
PYTHONS = {"bookworm": "3.11", "trixie": "3.13"}


@pytest.fixture(scope="module")
def fleet():
    """Two stock hosts: Debian 12 and Debian 13, both web."""
    with own_fleet(FLEET, 2, "bookworm,trixie", groups="web,web") as apps:
        yield apps


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """The two projects as their templates make them, and a requirements file for each."""
    where = tmp_path_factory.mktemp("projects")
    admin = [str(ROOT / ".venv" / "bin" / "django-admin")]
    subprocess.run([*admin, "startproject", "mysite"], cwd=where, check=True)
    (where / "mysite-requirements.txt").write_text("Django==5.2.19\n")
    # `wagtail start` is Django's startproject with Wagtail's template (wagtail/bin/wagtail.py).
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"wagtail=={WAGTAIL}",
                    "-d", str(where / "dl")], check=True)
    with zipfile.ZipFile(next((where / "dl").glob("wagtail-*.whl"))) as wheel:
        wheel.extractall(where / "dl", [n for n in wheel.namelist() if n.startswith("wagtail/project_template/")])
    subprocess.run([*admin, "startproject", f"--template={where / 'dl/wagtail/project_template'}",
                    "--ext=html,rst", "--name=Dockerfile", "news"], cwd=where, check=True)
    # Its own requirements, and the fix for django-tasks 0.9 on Python 3.11 (django-tasks#223).
    (where / "news-requirements.txt").write_text(f"-r {where / 'news' / 'requirements.txt'}\ndjango-tasks<0.9\n")
    # ephios as its authors publish its source: the project folder is the unpacked sdist, fetched
    # as a file (`pip download --no-binary` would run its build backend here, for its metadata).
    index = urllib.request.Request("https://pypi.org/simple/ephios/",
                                   headers={"Accept": "application/vnd.pypi.simple.v1+json"})  # PEP 691
    with urllib.request.urlopen(index, timeout=60) as answer:
        (url,) = [f["url"] for f in json.load(answer)["files"] if f["filename"] == f"ephios-{EPHIOS}.tar.gz"]
    (where / "dl" / f"ephios-{EPHIOS}.tar.gz").write_bytes(urllib.request.urlopen(url, timeout=120).read())
    with tarfile.open(next((where / "dl").glob("ephios-*.tar.gz"))) as sdist:
        sdist.extractall(where, filter="data")
    (where / f"ephios-{EPHIOS}").rename(where / "ephios")
    (where / "ephios-requirements.txt").write_text(f"ephios=={EPHIOS}\n")
    return where


def data(project, port, projects, **more):
    # Each project its own port at the front (gunicorn behind it: each its own unix socket).
    values = {"project": project, "app_user": project, "port": port,
              "app_path": str(projects / project),
              "requirements": str(projects / f"{project}-requirements.txt"), "health_path": "null", **more}
    return [arg for key, value in values.items() for arg in ("--data", f"{key}={value}")]


def deploy(*args, verb="deploy.py"):
    result = run_pyinfra("-y", *args, fleet=FLEET, deploy=verb)
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def unchanged(result):
    """A run that changed nothing; else the operations that changed, and their lines."""
    changed = {name: row for name, row in results(result.stdout).items() if row["changed"] and name != "Grand total"}
    assert not changed, (changed, [line for line in result.stdout.splitlines() if "restarts" in line or "changed" in line])


def manage(fleet, host, project, code, user=None):
    """Python run by the project's manage.py shell on the host, as the app user (the
    project's name unless given), with its .env."""
    command = (f"cd /srv/{project}/current && runuser -u {user or project} -- bash -c "
               f"'set -a; . /srv/{project}/shared/.env; set +a; exec venv/bin/python manage.py shell -c \"$0\"' "
               f"{shlex.quote(code)}")
    return fleet.ssh(host, command).stdout.strip().splitlines()[-1]


def not_debug_404(url):
    status, body = http_get(url)
    assert status == 404 and "URLconf" not in body and "DEBUG = True" not in body, (url, status, body[:300])


def admin_login(base, user, password):
    """Log in to Django's admin as a browser does (CSRF cookie and token): where it lands."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": user, "password": password,
                                   "next": "/admin/"}).encode()
    response = opener.open(urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=form,
                                                  headers={"Referer": f"{base}/admin/login/"}), timeout=10)
    return urllib.parse.urlsplit(response.geturl()).path


# The packages of a virtualenv, as `pip freeze --all` names them (the virtualenv has no pip).
FREEZE = ("bin/python -c 'import importlib.metadata as m; "
          "[print(d.metadata[\"Name\"] + \"==\" + d.version) for d in m.distributions()]'")


def venv_package(fleet, host):
    package = f"python{PYTHONS[host['suite']]}-venv"
    out = fleet.ssh(host, f"dpkg-query -W -f='${{Status}}' {package} 2>/dev/null; true").stdout
    return package, out == "install ok installed"


def test_djangos_own_project_template(fleet, projects):
    """The tutorial shape: every production setting it lacks comes from the deploy."""
    for host in fleet.hosts:  # stock: the venv module is not there
        assert venv_package(fleet, host)[1] is False, venv_package(fleet, host)
    args = data("mysite", 8001, projects)
    deploy(*args)
    fallback = re.search(r"SECRET_KEY = '([^']+)'", (projects / "mysite/mysite/settings.py").read_text()).group(1)
    for host in fleet.hosts:
        assert venv_package(fleet, host)[1] is False, host["suite"]  # not needed: made without pip
        base = f"http://{host['address']}:8001"
        status, body = http_get(f"{base}/admin/login/")
        assert status == 200 and "Django administration" in body
        status, css = http_get(f"{base}/static/admin/css/base.css")
        assert status == 200 and "body" in css  # collectstatic ran, and the files are served
        not_debug_404(f"{base}/no-such-page/")
        not_debug_404(f"{base}/")  # the template has no home page; DEBUG would show its rocket
        assert manage(fleet, host, "mysite", "from django.conf import settings as s; "
                      f"print(s.DEBUG, s.SECRET_KEY == {fallback!r}, len(s.SECRET_KEY))") == "False False 67"
        manage(fleet, host, "mysite", "from django.contrib.auth.models import User; "
               "User.objects.create_superuser('admin', 'a@example.com', 'correct-horse-battery')")
        assert admin_login(base, "admin", "correct-horse-battery") == "/admin/"

    unchanged(deploy(*args))  # a rerun changes nothing
    # An override turned off in data shows in the dry run's diff of the settings module.
    dry = run_pyinfra(*args, "--data", 'keep_app_settings=["DEBUG"]', "--dry", "--diff", fleet=FLEET)
    assert dry.returncode == 0 and "- DEBUG = False" in dry.stdout, dry.stdout[-3000:]
    # One resolution for the run: the same packages on Python 3.11 and 3.13.
    versions = {fleet.ssh(h, f"/srv/mysite/current/venv/{FREEZE} | grep -iE '^(django|gunicorn|asgiref)==' | sort")
                .stdout for h in fleet.hosts}
    assert len(versions) == 1 and "gunicorn==" in versions.pop()  # added: the template names Django only

    # A new release (a requirement more), then back: the data is the same throughout.
    (projects / "mysite-requirements.txt").write_text("Django==5.2.19\nsix==1.17.0\n")
    deploy(*args)
    for verb in ("deploy.py", "rollback.py"):
        if verb == "rollback.py":
            deploy(*args, verb=verb)
        for host in fleet.hosts:
            assert manage(fleet, host, "mysite", "from django.contrib.auth.models import User; "
                          "print(User.objects.filter(username='admin').count())") == "1", verb
            assert admin_login(f"http://{host['address']}:8001", "admin", "correct-horse-battery") == "/admin/"


IMAGE = """
import io
from PIL import Image
from django.core.files.images import ImageFile
from wagtail.images import get_image_model
data = io.BytesIO(); Image.new("RGB", (64, 48), (200, 30, 30)).save(data, format="PNG")
image = get_image_model()(title="upload", file=ImageFile(data, name="upload.png")); image.save()
print(image.file.url)
"""


def test_wagtails_project_template_with_uploads(fleet, projects):
    """A settings package, Pillow, and uploads kept in shared/ across releases and a rollback."""
    args = data("news", 8002, projects, settings_module="news.settings.production")
    deploy(*args)
    uploads = {}
    for host in fleet.hosts:
        base = f"http://{host['address']}:8002"
        status, body = http_get(f"{base}/")
        assert status == 200 and "Welcome to your new Wagtail site" in body
        assert http_get(f"{base}/static/css/welcome_page.css")[0] == 200
        status, body = http_get(f"{base}/admin/login/")
        assert status == 200 and "csrfmiddlewaretoken" in body
        not_debug_404(f"{base}/no-such-page/")
        uploads[host["machine"]] = manage(fleet, host, "news", IMAGE)
        assert uploads[host["machine"]].startswith("/media/original_images/upload")
        stored = fleet.ssh(host, f"stat -c '%U %n' /srv/news/shared{uploads[host['machine']]}").stdout.split()
        assert stored[0] == "news"  # in shared/, the app's, not in the release

    def uploads_served():
        for host in fleet.hosts:
            request = urllib.request.urlopen(f"http://{host['address']}:8002{uploads[host['machine']]}", timeout=10)
            assert request.status == 200 and request.headers["Content-Type"] == "image/png"
            assert request.read().startswith(b"\x89PNG")

    uploads_served()
    unchanged(deploy(*args))
    requirements = projects / "news-requirements.txt"
    requirements.write_text(requirements.read_text() + "six==1.17.0\n")
    deploy(*args)
    uploads_served()
    deploy(*args, verb="rollback.py")
    uploads_served()
    for host in fleet.hosts:
        assert manage(fleet, host, "news", "from wagtail.images import get_image_model; "
                      "print(get_image_model().objects.filter(title='upload').count())") == "1"


def test_a_release_that_fails_on_every_host_leaves_nothing_behind(fleet, projects):
    """The app's own SQLite path (DATABASES kept as the template has it) is inside the
    read-only release: its migrations fail on every host. The message names the database's
    path; no lock, archive or half release stays; the release before serves on."""
    args = data("mysite", 8001, projects)
    serving = {h["machine"]: fleet.ssh(h, "readlink /srv/mysite/current").stdout.strip() for h in fleet.hosts}
    (projects / "mysite-requirements.txt").write_text("Django==5.2.19\nsix==1.16.0\n")  # a new release
    result = run_pyinfra("-y", *args, "--data", 'keep_app_settings=["DATABASES"]', fleet=FLEET)
    assert result.returncode == 1
    assert "No hosts remaining" in result.stdout  # pyinfra stopped before its last operation
    for host in fleet.hosts:
        prefix = f"[{host['address']}] release: "
        assert f"{prefix}the database is /srv/mysite/releases/.new-" in result.stdout, result.stdout[-3000:]
        assert "/db.sqlite3: the app user mysite cannot create or write it there" in result.stdout
        listing = fleet.ssh(host, "ls -A /srv/mysite /srv/mysite/releases").stdout.split()
        assert ".deploy-lock" not in listing
        assert not [name for name in listing if name.endswith(".tar") or name.startswith(".new-")], listing
        assert fleet.ssh(host, "readlink /srv/mysite/current").stdout.strip() == serving[host["machine"]]
        assert http_get(f"http://{host['address']}:8001/admin/login/")[0] == 200
    status = run_pyinfra("-y", *args, fleet=FLEET, deploy="status.py")
    for line in [line for line in status.stdout.splitlines() if "current=" in line]:
        assert "lock=free" in line and ".tar" not in line, line
    again = deploy(*args)  # no "lock left by a killed deploy": there is none
    assert "left by a killed deploy" not in again.stdout and "lock held by" not in again.stdout


# What ephios reads from the environment, as its docs list it (DATABASE_URL and SECRET_KEY
# come from the deploy's settings module; STATIC_ROOT stays ephios's own, in DATA_DIR,
# because it compresses CSS on demand into it).
EPHIOS_ENV = {"DEBUG": "False", "ALLOWED_HOSTS": "*", "SITE_URL": "http://localhost", "EMAIL_URL": "dummymail://",
              "DEFAULT_FROM_EMAIL": "ephios@localhost", "SERVER_EMAIL": "ephios@localhost",
              "ADMINS": "Admin <root@localhost>", "DATA_DIR": "/srv/ephios/shared/data",
              "TRUST_X_FORWARDED_PROTO": "True"}


def test_a_twelve_factor_app_reading_database_url(fleet, projects, tmp_path):
    """ephios redirects plain HTTP to HTTPS itself (SECURE_SSL_REDIRECT, SECURE_PROXY_SSL_HEADER):
    served with a domain and a certificate (the user's own files here), through the front."""
    domain = "ephios.fleet.test"
    cert, key = tmp_path / "site.pem", tmp_path / "site.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={domain}", "-addext", f"subjectAltName=DNS:{domain}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    # Its two dependencies published as source only: built on the controller, in the sandbox.
    args = data("ephios", 8003, projects, release_commands='["build"]', debian_packages='["gettext"]',
                source_builds='["django-jquery-js", "http-ece"]',
                keep_app_settings='["STATIC_ROOT", "DATABASES"]', app_env=json.dumps(EPHIOS_ENV), domain=domain,
                tls=json.dumps({"certificate": str(cert), "key": str(key)}))
    deploy(*args)
    for host in fleet.hosts:
        # Published as source only: built into a wheel on the controller (source_builds allows it,
        # the sandbox runs it), locked like the rest.
        lock = fleet.ssh(host, "cat /srv/ephios/wheels/requirements-*.lock").stdout
        assert re.search(r"^django-jquery-js==3\.1\.1 --hash=sha256:", lock, re.M), lock

        def by_https(path):
            out = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", str(cert), "--resolve",
                                  f"{domain}:443:{host['address']}", "-w", "\n%{http_code}", f"https://{domain}{path}"],
                                 capture_output=True, text=True, timeout=60)
            page, _, status = out.stdout.rpartition("\n")
            return int(status or 0), page

        status, page = by_https("/accounts/login/")
        css = re.search(r'href="(/static/[^"]+\.css)"', page).group(1)
        assert status == 200 and by_https(css)[0] == 200
        assert by_https("/admin/login/")[0] == 200
        redirected = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                                     "--resolve", f"{domain}:80:{host['address']}", f"http://{domain}/admin/login/"],
                                    capture_output=True, text=True, timeout=60).stdout
        assert redirected == f"308 https://{domain}/admin/login/"
        # Its own settings read DATABASE_URL and SECRET_KEY: the deploy's, from the environment.
        assert manage(fleet, host, "ephios", "from django.conf import settings as s; "
                      "print(s.DATABASES['default']['NAME'], s.DEBUG, "
                      "s.SECRET_KEY == open('/srv/ephios/shared/secret_key').read().strip())") == (
            "/srv/ephios/shared/data/db.sqlite3 False True")
    unchanged(deploy(*args))


# A newcomer's app of their own, made as Django's tutorial makes one, with the static layout
# many projects use: its own static/ folder in STATICFILES_DIRS.
NEWCOMER_SETTINGS = """
STATICFILES_DIRS = [BASE_DIR / "static"]
"""


def newcomer_clone(where: Path, app_settings: str = NEWCOMER_SETTINGS) -> Path:
    """A fresh copy of the deploy files beside a new app `newsite` (startproject, its own
    requirements.txt, no /healthz), with group_data/all.py changed in project and app_path
    only, as the README tells a newcomer."""
    clone = copy_project(where)
    subprocess.run([str(ROOT / ".venv" / "bin" / "django-admin"), "startproject", "newsite"], cwd=clone, check=True)
    (clone / "newsite" / "requirements.txt").write_text("Django==5.2.19\n")
    (clone / "newsite" / "static").mkdir()
    (clone / "newsite" / "static" / "newsite.css").write_text("body { color: teal }\n")
    settings = clone / "newsite" / "newsite" / "settings.py"
    settings.write_text(settings.read_text() + app_settings)
    all_py = clone / "group_data" / "all.py"
    text = all_py.read_text()
    assert 'project = "my_awesome_project"' in text and 'app_path = "app"' in text, text
    all_py.write_text(text.replace('project = "my_awesome_project"', 'project = "newsite"')
                      .replace('app_path = "app"', 'app_path = "newsite"'))
    return clone


def test_a_fresh_clone_with_only_app_path_and_project_changed_deploys_a_new_app(fleet, tmp_path):
    """Nothing of the sample app reaches another app: its requirements are its own, its
    health gate is the deploy's (it has no /healthz), and its static/ folder (in
    STATICFILES_DIRS) is not STATIC_ROOT (staticfiles.E002 before)."""
    clone = newcomer_clone(tmp_path / "clone")
    # One host's own data, in its entry of servers.toml (the README's way): its site's name.
    first = fleet.hosts[0]["address"]
    servers = Path(f"/var/lib/djdeploy/fleets/{FLEET}/servers.toml").read_text()
    assert f'"{first}"' in servers, servers
    (clone / "servers.toml").write_text(servers.replace(
        f'"{first}"', f'{{ name = "{first}", app_env = {{ SITE_NAME = "first" }} }}', 1))
    result = run_pyinfra("-y", fleet=FLEET, cwd=clone)
    assert result.returncode == 0, result.stdout[-4000:]
    for host in fleet.hosts:
        site_name = 'SITE_NAME="first"' in fleet.ssh(host, "cat /srv/newsite/shared/.env").stdout
        assert site_name == (host["address"] == first), host  # that host's alone
        base = f"http://{host['address']}"  # the web group's port 80: this fleet's other projects have their own
        status, body = http_get(f"{base}/admin/login/")
        assert status == 200 and "Django administration" in body
        assert http_get(f"{base}/static/newsite.css") == (200, "body { color: teal }\n")
        assert http_get(f"{base}/static/admin/css/base.css")[0] == 200
        assert http_get(f"{base}/healthz")[0] == 404  # it has none; the gate used the deploy's /-/up
        freeze = fleet.ssh(host, f"/srv/newsite/current/venv/{FREEZE}").stdout.lower()
        assert "django==5.2.19" in freeze and "gunicorn==" in freeze
        assert "\npip==" not in "\n" + freeze  # the app's packages alone: nothing in it installs more
        assert "whitenoise" not in freeze and "django-tasks" not in freeze  # the sample's, not this app's
        units = fleet.ssh(host, "systemctl list-units --all --no-legend 'newsite*'").stdout
        assert "worker" not in units and "job" not in units, units  # nor its workers or timers
        env = fleet.ssh(host, "cat /srv/newsite/shared/.env").stdout
        assert 'PYTHONUNBUFFERED="1"' in env  # the journal has each line as it is printed
    unchanged(run_pyinfra("-y", fleet=FLEET, cwd=clone))
    (clone / "servers.toml").unlink()  # the fleet's own servers file again, for the tests below


# Each production setting the deploy sets, as this app has it instead (keep_app_settings).
KEPT_SETTINGS = """
import os
ALLOWED_HOSTS = ["*"]
SECRET_KEY = "kept-" + "k" * 60
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DJANGO_DB_PATH"] + "-kept",
                         "OPTIONS": {"timeout": 7}}}
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = "/srv/newsite/shared/data/media-kept"
CSRF_TRUSTED_ORIGINS = ["https://kept.example"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
SECURE_PROXY_SSL_HEADER = ("HTTP_X_KEPT", "yes")
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 7
"""


def test_keep_app_settings_keeps_every_setting_it_accepts(fleet, tmp_path):
    """Each of the deploy's production settings, kept, is the app's own at run time; the
    app's STATIC_ROOT inside the release is filled by collectstatic (a PermissionError
    before) and served."""
    clone = newcomer_clone(tmp_path / "kept", NEWCOMER_SETTINGS + KEPT_SETTINGS)
    kept = json.dumps(list(OVERRIDES))
    result = run_pyinfra("-y", "--data", f"keep_app_settings={kept}", fleet=FLEET, cwd=clone)
    assert result.returncode == 0, result.stdout[-4000:]
    shown = ("from django.conf import settings as s; import json; print(json.dumps([s.ALLOWED_HOSTS, s.DEBUG, "
             "s.SECRET_KEY[:6], s.DATABASES['default']['NAME'].endswith('-kept'), s.DATABASES['default']['OPTIONS'], "
             "str(s.STATIC_ROOT), str(s.MEDIA_ROOT), s.CSRF_TRUSTED_ORIGINS, s.LOGGING['root'], "
             "list(s.SECURE_PROXY_SSL_HEADER), s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
             "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS]))")
    for host in fleet.hosts:
        release = fleet.ssh(host, "readlink -f /srv/newsite/current").stdout.strip()
        values = json.loads(manage(fleet, host, "newsite", shown, user="web"))
        assert values == [["*"], True, "kept-k", True, {"timeout": 7}, f"{release}/staticfiles",
                          "/srv/newsite/shared/data/media-kept", ["https://kept.example"], {"level": "WARNING"},
                          ["HTTP_X_KEPT", "yes"], False, False, False, 7], values
        owner = fleet.ssh(host, f"stat -c '%U %a' {release}/staticfiles {release}/staticfiles/newsite.css").stdout
        assert owner.split("\n")[:2] == ["root 755", "root 644"], owner  # read-only once collected
        assert http_get(f"http://{host['address']}/static/newsite.css") == (200, "body { color: teal }\n")
    back = run_pyinfra("-y", fleet=FLEET, cwd=clone)  # the deploy's settings again
    assert back.returncode == 0, back.stdout[-4000:]
    for host in fleet.hosts:
        options = json.loads(manage(fleet, host, "newsite", "from django.conf import settings as s; import json; "
                                    "print(json.dumps(s.DATABASES['default']['OPTIONS']))", user="web"))
        assert options["timeout"] == 7  # the app's SQLite OPTIONS kept under the deploy's DATABASES
        assert options["transaction_mode"] == "IMMEDIATE" and "journal_mode=WAL" in options["init_command"]
        mode = fleet.ssh(host, "runuser -u web -- /srv/newsite/current/venv/bin/python -c \"import sqlite3; "
                         "print(sqlite3.connect('/srv/newsite/shared/data/db.sqlite3').execute('pragma journal_mode')"
                         ".fetchone()[0])\"").stdout.strip()
        assert mode == "wal"
