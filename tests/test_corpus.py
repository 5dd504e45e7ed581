"""The corpus (tests/corpus, SOURCES.md): real Django projects that nobody here wrote,
vendored unmodified, each deployed the way a newcomer does it (a copy of the deploy files,
group_data/all.py naming the project, its folder, its port, and at most six keys of its
own), side by side on ONE fleet of a stock Debian 12 and a stock Debian 13 host, each on
its own port. Each test checks what a user would: pages, a static file through the front,
the project's background process doing its job, and a rerun that changes nothing.

The corpus complements tests/test_real_apps.py (Django's and Wagtail's templates, ephios).
"""

import http.cookiejar
import re
import shlex
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, copy_project, http_get, own_fleet, results, run_pyinfra

FLEET = "cpcorpus"
CORPUS = ROOT / "tests" / "corpus"
REQUIREMENTS = CORPUS / "requirements"  # for the projects that ship none usable (SOURCES.md)


@pytest.fixture(scope="module")
def fleet():
    """Every corpus project shares these two hosts: Debian 12 and Debian 13, both web."""
    with own_fleet(FLEET, 2, "bookworm,trixie", groups="web,web") as hosts:
        yield hosts


def newcomer_copy(tmp_path: Path, name: str, port: int, **own) -> Path:
    """The deploy files as a newcomer copies them: all.py names the project, its folder and
    its port (every project on a host has its own), and the project's own keys."""
    target = copy_project(tmp_path / name)
    project = name.replace("-", "_")
    lines = [f"project = {project!r}", f"app_path = {str(CORPUS / name)!r}", f"app_user = {project!r}",
             f"port = {port}", *(f"{key} = {value!r}" for key, value in own.items())]
    assert len(own) <= 6, own
    (target / "group_data" / "all.py").write_text("\n".join(lines) + "\n")
    (target / "group_data" / "web.py").write_text("")  # the example web group's port and user are the sample app's
    return target


def deploy(project: Path, servers: Path | None = None):
    env = {"DJDEPLOY_SERVERS": str(servers)} if servers else None
    result = run_pyinfra("-y", fleet=FLEET, cwd=project, env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def deploy_and_rerun(project: Path, servers: Path | None = None):
    """Deploys, then returns a callable that deploys again and asserts nothing changed."""
    deploy(project, servers)

    def rerun():
        again = deploy(project, servers)
        assert results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-3000:]
    return rerun


def manage(fleet, host, project, code):
    """Python run by the project's manage.py shell on the host, as the app user, with its .env."""
    command = (f"cd /srv/{project}/current && runuser -u {project} -- bash -c "
               f"'set -a; . /srv/{project}/shared/.env; set +a; exec venv/bin/python manage.py shell -c \"$0\"' "
               f"{shlex.quote(code)}")
    return fleet.ssh(host, command, timeout=90).stdout.strip().splitlines()[-1]


def page(url, *words):
    status, body = http_get(url, timeout=15)
    assert status == 200 and all(word in body for word in words), (url, status, body[:500])
    return body


def static(url, kind=b"{"):
    """A static file, served by the front (Caddy), not by gunicorn."""
    with urllib.request.urlopen(url, timeout=15) as response:
        assert response.status == 200 and response.headers["Server"] == "Caddy", (url, response.headers)
        assert kind in response.read(), url


def not_debug_404(url):
    status, body = http_get(url)
    assert status == 404 and "DEBUG = True" not in body and "URLconf" not in body, (url, status, body[:300])


def base(host, port):
    return f"http://{host['address']}:{port}"


def trixie_only(fleet, tmp_path) -> Path:
    """A servers file with the Debian 13 host only, as its owner writes one."""
    servers = Path(f"/var/lib/djdeploy/fleets/{FLEET}/servers.toml").read_text()
    trixie = next(h["address"] for h in fleet.hosts if h["suite"] == "trixie")
    path = tmp_path / "servers-trixie.toml"
    path.write_text(re.sub(r"(?m)^hosts = \[.*\]$", f'hosts = ["{trixie}"]', servers))
    return path


CELERY_KEYS = {
    "requirements": str(REQUIREMENTS / "celery-django.txt"),  # its own, plus celery[redis]
    "debian_packages": ["redis-server"],
    # Celery reads these before its settings' hard-coded RabbitMQ (celery/app/utils.py).
    "app_env": {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/1"},
    "processes": {"worker": {"command": "celery -A proj worker -l INFO", "count": 1}},
}

CELERY_ROUND_TRIP = """
from demoapp.models import Widget
from demoapp.tasks import add, rename_widget
w = Widget.objects.create(name="before")
rename_widget.delay(w.id, "renamed by the worker").get(timeout=30)
print(add.delay(2, 3).get(timeout=30), Widget.objects.get(id=w.id).name)
"""


def celery_checks(fleet, host):
    states = fleet.ssh(host, "systemctl is-active celery_django-worker@1 redis-server", check=False).stdout.split()
    assert states == ["active"] * 2, (states, fleet.ssh(host, "journalctl -u celery_django-worker@1 --no-pager -n 40",
                                                        check=False).stdout)
    assert manage(fleet, host, "celery_django", CELERY_ROUND_TRIP) == "5 renamed by the worker"
    journal = fleet.ssh(host, "journalctl -u celery_django-worker@1 --no-pager").stdout
    assert re.search(r"Task demoapp\.tasks\.rename_widget\[[-0-9a-f]+\] succeeded", journal), journal[-2000:]
    static(f"{base(host, 8101)}/static/admin/css/base.css")
    not_debug_404(f"{base(host, 8101)}/")  # the example routes no URL at all


@pytest.fixture(scope="module")
def celery_deployed(fleet, tmp_path_factory):
    project = newcomer_copy(tmp_path_factory.mktemp("celery"), "celery-django", 8101, **CELERY_KEYS)
    return deploy_and_rerun(project)


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])  # bookworm: redis's async-timeout (markers)
def test_celery_example_runs_tasks_through_redis(fleet, celery_deployed, suite):
    """Celery's own Django example (celery 5.7.0): a worker process beside the site takes
    tasks through Redis from Debian, and writes the site's database."""
    celery_checks(fleet, next(h for h in fleet.hosts if h["suite"] == suite))


def test_celery_example_rerun_changes_nothing(celery_deployed):
    celery_deployed()


def signup(url, email, password):
    """Sign up as a browser does (CSRF cookie and token): where it lands."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(f"{url}/accounts/signup/", timeout=15).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "email": email, "password1": password,
                                   "password2": password}).encode()
    response = opener.open(urllib.request.Request(f"{url}/accounts/signup/", data=data,
                                                  headers={"Referer": f"{url}/accounts/signup/"}), timeout=15)
    return urllib.parse.urlsplit(response.geturl()).path, response.read().decode()


def test_allauth_example_signs_a_user_up(fleet, tmp_path):
    """django-allauth's example project: its pages, and a sign-up that reaches the e-mail
    verification step, with the user in the host's database. No key of its own."""
    rerun = deploy_and_rerun(newcomer_copy(tmp_path, "allauth-example", 8102))
    for host in fleet.hosts:
        url = base(host, 8102)
        page(f"{url}/", "Sign In")
        page(f"{url}/accounts/login/", "csrfmiddlewaretoken")
        static(f"{url}/static/admin/css/base.css")
        email = f"user-{host['suite']}@example.com"
        landed, body = signup(url, email, "correct-horse-battery-staple")
        assert landed == "/accounts/confirm-email/" and "code" in body.lower(), (landed, body[:500])
        assert manage(fleet, host, "allauth_example", "from django.contrib.auth import get_user_model; "
                      f"print(get_user_model().objects.filter(email={email!r}).count())") == "1"
        not_debug_404(f"{url}/no-such-page/")
    rerun()


def test_coderedcms_wagtail_site(fleet, tmp_path):
    """A Wagtail site as `coderedcms start` makes it (a settings package; manage.py names the
    dev settings, which the deploy's production settings go on top of). No key of its own."""
    rerun = deploy_and_rerun(newcomer_copy(tmp_path, "crx-site", 8103))
    for host in fleet.hosts:
        url = base(host, 8103)
        page(f"{url}/", "<title>Home — mysite")  # the home page its migrations create
        page(f"{url}/admin/login/", "csrfmiddlewaretoken")
        static(f"{url}/static/website/css/custom.css", b"crx-grid")  # the project's own static files
        not_debug_404(f"{url}/no-such-page/")
    rerun()


def test_spinproject_settings_from_the_environment_with_whitenoise(fleet, tmp_path):
    """django-spinproject's project: every setting from the environment (django-environ, no
    default for the secret key or the database URL) and WhiteNoise's manifest storage."""
    data_dir = "/srv/spin_site/shared/data"
    rerun = deploy_and_rerun(newcomer_copy(
        tmp_path, "spin-site", 8105, requirements=str(REQUIREMENTS / "spin-site.txt"),
        app_env={"DJANGO_DATABASE_URL": f"sqlite:///{data_dir}/db.sqlite3"}))
    for host in fleet.hosts:
        url = base(host, 8105)
        login = page(f"{url}/admin/login/", "Django administration")
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login)
        assert css, login[:1000]  # WhiteNoise's manifest names, as the app renders them
        static(url + css.group(1))
        assert manage(fleet, host, "spin_site", "from django.conf import settings as s; "
                      "print(s.DEBUG, s.DATABASES['default']['NAME'])") == f"False {data_dir}/db.sqlite3"
        not_debug_404(f"{url}/")
    rerun()


def test_django_6_project_on_debian_13(fleet, tmp_path):
    """Django 6.1's own project template, on the Debian 13 host (Python 3.13); Django 6 needs
    Python 3.12 or later. Its settings send mail to the console, which `check --deploy`
    calls an error from Django 6.1 on (mail.E001): check_level lets it serve."""
    project = newcomer_copy(tmp_path, "polls6", 8106, requirements=str(REQUIREMENTS / "polls6.txt"),
                            check_level="CRITICAL")
    servers = trixie_only(fleet, tmp_path)
    rerun = deploy_and_rerun(project, servers)
    host = next(h for h in fleet.hosts if h["suite"] == "trixie")
    url = base(host, 8106)
    page(f"{url}/admin/login/", "Django administration")
    static(f"{url}/static/admin/css/base.css")
    not_debug_404(f"{url}/")
    assert manage(fleet, host, "polls6", "import django; print(django.get_version())") == "6.1.3"
    rerun()


def test_django_6_on_debian_12_is_refused_in_one_line(fleet, tmp_path):
    """Both hosts: the Debian 12 host's deploy says in one line that Django 6 needs a newer Python."""
    project = newcomer_copy(tmp_path, "polls6", 8106, requirements=str(REQUIREMENTS / "polls6.txt"),
                            check_level="CRITICAL")
    result = run_pyinfra("-y", fleet=FLEET, cwd=project)
    bookworm = next(h["address"] for h in fleet.hosts if h["suite"] == "bookworm")
    trixie = next(h["address"] for h in fleet.hosts if h["suite"] == "trixie")
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stdout[-3000:]
    assert errors[0].startswith(f"error: host {bookworm}") and "Python 3.11" in errors[0], errors
    assert http_get(f"http://{trixie}:8106/admin/login/")[0] == 200  # the Debian 13 host serves on


def test_tables2_example_a_flat_project_without_a_wsgi_module(fleet, tmp_path):
    """django-tables2's example: a flat layout (settings.py and urls.py at the top), no
    wsgi.py and no WSGI_APPLICATION (served by Django's own handler, as runserver does),
    templates found relative to the working directory, its fixture loaded in each release."""
    rerun = deploy_and_rerun(newcomer_copy(
        tmp_path, "tables2-example", 8107, requirements=str(REQUIREMENTS / "tables2-example.txt"),
        release_commands=["loaddata app/fixtures/initial_data.json"]))
    for host in fleet.hosts:
        url = base(host, 8107)
        page(f"{url}/", "<table", "</table>")
        page(f"{url}/class-based/", "<table")
        static(f"{url}/static/admin/css/base.css")
        assert manage(fleet, host, "tables2_example", "from django.conf import settings as s; "
                      "print(s.DEBUG, s.WSGI_APPLICATION)") == "False None"
        not_debug_404(f"{url}/no-such-page/")
    rerun()


HUEY_KEYS = {
    "requirements": str(REQUIREMENTS / "huey-django.txt"),  # huey[redis,stats], Django
    "debian_packages": ["redis-server"],  # its settings take huey's default: Redis on localhost
    "processes": {"worker": {"command": "python manage.py run_huey", "count": 1}},  # its README's consumer
    "linked_files": ["huey-stats.db"],  # its stats app's SQLite file, at the settings' BASE_DIR
}


@pytest.fixture(scope="module")
def huey_deployed(fleet, tmp_path_factory):
    return deploy_and_rerun(newcomer_copy(tmp_path_factory.mktemp("huey"), "huey-django", 8110, **HUEY_KEYS))


def huey_journal(fleet, host):
    return fleet.ssh(host, "journalctl -u huey_django-worker@1 --no-pager", check=False).stdout


def test_huey_example_runs_tasks_through_its_consumer(fleet, huey_deployed):
    """huey's own Django example (huey 3.5.4): the consumer (`manage.py run_huey`) beside the
    site takes tasks through Redis from Debian. No WSGI_APPLICATION and no wsgi.py."""
    for host in fleet.hosts:
        states = fleet.ssh(host, "systemctl is-active huey_django-worker@1 redis-server", check=False).stdout.split()
        assert states == ["active"] * 2, (states, huey_journal(fleet, host)[-3000:])
        assert manage(fleet, host, "huey_django", "from djangoex.test_app.tasks import add, mul; print("
                      "add(2, 3).get(blocking=True, timeout=30), mul(4, 5).get(blocking=True, timeout=30))") == "5 20"
        assert "djangoex.test_app.tasks.mul" in huey_journal(fleet, host), huey_journal(fleet, host)[-2000:]
        url = base(host, 8110)
        page(f"{url}/admin/login/", "Django administration")
        static(f"{url}/static/admin/css/base.css")
        not_debug_404(f"{url}/")  # the example routes the admin only


def test_huey_example_records_its_stats(fleet, huey_deployed):
    """huey's stats app (in its INSTALLED_APPS) records to a SQLite file at the settings'
    BASE_DIR, the read-only release: `linked_files` keeps it in shared/data, where the
    consumer records every task it ran, and the next release finds the same file."""
    for host in fleet.hosts:
        journal = fleet.ssh(host, "journalctl -u huey_django-worker@1 -u huey_django --no-pager", check=False).stdout
        assert "stats recorder failed to start" not in journal, journal[-3000:]
        events = manage(fleet, host, "huey_django", "from djangoex.test_app.tasks import add; "
                        "add(1, 1).get(blocking=True, timeout=30); "
                        "from huey.contrib.djhuey.stats.apps import stats_database; "
                        "print(stats_database().execute_sql('select count(*) from huey_event').fetchone()[0])")
        assert int(events) > 0, events
        link = fleet.ssh(host, "readlink /srv/huey_django/current/huey-stats.db; "
                         "stat -c %U /srv/huey_django/shared/data/linked/huey-stats.db").stdout.split()
        assert link == ["/srv/huey_django/shared/data/linked/huey-stats.db", "huey_django"], link


def test_huey_example_rerun_changes_nothing(huey_deployed):
    huey_deployed()


def test_unicorn_example_its_own_static_folder(fleet, tmp_path):
    """django-unicorn's example: the project's own static/ folder (STATICFILES_DIRS beside
    manage.py), and a manage.py inside the package it imports (example.project.settings),
    which it reaches by putting the folder above on sys.path."""
    rerun = deploy_and_rerun(newcomer_copy(tmp_path, "unicorn-example", 8111,
                                           requirements=str(REQUIREMENTS / "unicorn-example.txt")))
    for host in fleet.hosts:
        url = base(host, 8111)
        page(f"{url}/", "unicorn")
        static(f"{url}/static/css/styles.css", b"")  # from its own static/ folder
        static(f"{url}/static/unicorn/js/unicorn.js", b"Unicorn")  # the library's, through its app
        not_debug_404(f"{url}/no-such-page/")
    rerun()


def test_drf_yasg_test_project_with_dj_database_url(fleet, tmp_path):
    """drf-yasg's test project (drf-yasg 1.21.18), with its own production settings
    (`testproj.settings.prod`: WhiteNoise, the secret key from the environment): its
    settings build DATABASES with dj-database-url and name its own static/ folder in
    STATICFILES_DIRS; the OpenAPI document, Swagger UI and its static files. One of its
    dependencies has no wheel: the deploy may build it (pure Python) as data allows."""
    rerun = deploy_and_rerun(newcomer_copy(
        tmp_path, "drf-yasg-testproj", 8112, requirements=str(REQUIREMENTS / "drf-yasg-testproj.txt"),
        settings_module="testproj.settings.prod", source_builds=["djangorestframework-camel-case"]))
    for host in fleet.hosts:
        url = base(host, 8112)
        page(f"{url}/swagger.json", '"title": "Snippets API"', '"/snippets/"')
        ui = page(f"{url}/cached/swagger/", "swagger-ui")
        css = re.search(r'href="(/static/drf-yasg/swagger-ui-dist/swagger-ui\.css)"', ui)
        assert css, ui[:1500]
        static(url + css.group(1), b"swagger-ui")
        assert manage(fleet, host, "drf_yasg_testproj", "from django.conf import settings as s; "
                      "print(s.DEBUG, s.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1], "
                      "s.STATICFILES_DIRS[0].endswith('/testproj/static'))") == "False sqlite3 True"
        not_debug_404(f"{url}/no-such-page/")
    rerun()
