"""Pieces of files/release.sh that need no host: what a failed check shows."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK_DEPLOY = """\
SystemCheckError: System check identified some issues:

ERRORS:
?: (security.E001) the first error
?: (security.E002) the second error

WARNINGS:
""" + "".join(f"?: (security.W{n:03}) warning number {n}\n" for n in range(1, 12)) + """
System check identified 13 issues (0 silenced).
"""


def shown(output: str, tmp_path) -> str:
    """release.sh's `shown` on a check's output (the script's functions, without its dispatch)."""
    script = (ROOT / "files" / "release.sh").read_text().split("\ncommand=")[0]
    (tmp_path / "out").write_text(output)
    return subprocess.run(["bash", "-c", script + '\nshown "$1"', "release.sh", str(tmp_path / "out")],
                          capture_output=True, text=True, check=True).stdout


def test_check_deploy_errors_are_shown_before_its_warnings(tmp_path):
    lines = shown(CHECK_DEPLOY, tmp_path).splitlines()
    assert lines[0] == "ERRORS:"
    assert "the first error" in lines[1] and "the second error" in lines[2]
    assert not any("warning number" in line for line in lines)


def test_other_failures_show_their_last_lines(tmp_path):
    output = "".join(f"line {n}\n" for n in range(1, 20))
    assert shown(output, tmp_path).splitlines() == [f"line {n}" for n in range(15, 20)]


def test_an_exception_printed_before_other_output_is_shown(tmp_path):
    output = "CommandError: Can't find msgfmt.\nLoading\nkey exists\n\n431 static files copied\n"
    lines = shown(output, tmp_path).splitlines()
    assert lines[0] == "CommandError: Can't find msgfmt." and lines[-1] == "431 static files copied"


# What `manage.py check` printed on a host with plain psycopg and no libpq (paths shortened).
PSYCOPG_WITHOUT_LIBPQ = """\
Traceback (most recent call last):
  File "/srv/p/releases/.new-x/venv/lib/python3.11/site-packages/django/db/backends/postgresql/base.py", line 25, in <module>
    import psycopg as Database
  File "/srv/p/venvs/a-py311/lib/python3.11/site-packages/psycopg/__init__.py", line 9, in <module>
    from . import pq  # noqa: F401 import early to stabilize side effects
    ^^^^^^^^^^^^^^^^
  File "/srv/p/venvs/a-py311/lib/python3.11/site-packages/psycopg/pq/__init__.py", line 116, in <module>
    import_from_libpq()
  File "/srv/p/venvs/a-py311/lib/python3.11/site-packages/psycopg/pq/__init__.py", line 108, in import_from_libpq
    raise ImportError(
ImportError: no pq wrapper available.
Attempts made:
- couldn't import psycopg 'c' implementation: No module named 'psycopg_c'
- couldn't import psycopg 'binary' implementation: No module named 'psycopg_binary'
- couldn't import psycopg 'python' implementation: libpq library not found

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/p/venvs/a-py311/lib/python3.11/site-packages/django/db/backends/postgresql/base.py", line 27, in <module>
    import psycopg2 as Database
ModuleNotFoundError: No module named 'psycopg2'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/p/releases/.new-x/manage.py", line 22, in <module>
    main()
  File "/srv/p/venvs/a-py311/lib/python3.11/site-packages/django/db/backends/postgresql/base.py", line 29, in <module>
    raise ImproperlyConfigured("Error loading psycopg2 or psycopg module")
django.core.exceptions.ImproperlyConfigured: Error loading psycopg2 or psycopg module
"""


def test_every_exception_of_a_chained_traceback_is_shown_its_cause_first(tmp_path):
    """psycopg's own ImportError (libpq library not found) is what says what is wrong; it
    was cut, and only Django's fallback to psycopg2 (No module named 'psycopg2') shown."""
    lines = shown(PSYCOPG_WITHOUT_LIBPQ, tmp_path).splitlines()
    assert lines[0] == "ImportError: no pq wrapper available."
    assert "- couldn't import psycopg 'python' implementation: libpq library not found" in lines
    assert lines.index("ModuleNotFoundError: No module named 'psycopg2'") > 0
    assert "django.core.exceptions.ImproperlyConfigured: Error loading psycopg2 or psycopg module" in lines
    assert len(lines) == len(set(lines)) and len(lines) <= 20


def test_a_missing_pkg_resources_says_to_require_setuptools(tmp_path):
    """A virtualenv made without pip has no setuptools (ensurepip put it there on Python
    3.11): an app that imports pkg_resources unasked fails its check with what to do."""
    (tmp_path / "out").write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                                  "ModuleNotFoundError: No module named 'pkg_resources'\n")
    failed = run_function(tmp_path, f'ID=0123456789ab; failed "its WSGI import" {tmp_path / "out"}')
    assert failed.returncode == 1
    assert "release: 0123456789ab failed its WSGI import:" in failed.stderr
    assert "add setuptools to the app's requirements" in failed.stderr


def run_function(tmp_path, call, env=None):
    import os

    script = (ROOT / "files" / "release.sh").read_text().split("\ncommand=")[0]
    return subprocess.run(["bash", "-c", script + "\n" + call], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def test_a_release_may_not_link_out_of_itself(tmp_path):
    release = tmp_path / "releases" / ".new-0123456789ab"
    (release / "app").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "writable.py").write_text("")
    (release / "venv").symlink_to("../../venvs/k-py311")  # the one link a release has
    (release / "app" / "inside.py").write_text("")
    (release / "app" / "alias.py").symlink_to("inside.py")
    assert run_function(tmp_path, f"confined {release}").returncode == 0
    (release / "app" / "views.py").symlink_to(tmp_path / "shared" / "writable.py")
    out = run_function(tmp_path, f"confined {release}")
    assert out.returncode == 1 and "app/views.py" in out.stdout
    (release / "app" / "views.py").unlink()
    (release / "app" / "db.sqlite3").hardlink_to(tmp_path / "shared" / "writable.py")
    out = run_function(tmp_path, f"confined {release}")
    assert out.returncode == 1 and "db.sqlite3" in out.stdout


def test_prune_deletes_release_folders_only_whatever_a_release_file_says(tmp_path):
    root = tmp_path / "srv"
    (tmp_path / "precious").mkdir()
    for number, release in enumerate(("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc")):
        (root / "releases" / release).mkdir(parents=True)
        (root / "releases" / release / ".release").write_text(f"{release} {1000 + number}\n")
    (root / "releases" / "aaaaaaaaaaaa" / ".release").write_text("../../precious 0\n")  # written by the app
    (root / "venvs").mkdir()
    (root / "current").symlink_to("releases/cccccccccccc")
    out = run_function(tmp_path, "prune 1", {"ROOT": str(root)})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "precious").is_dir()
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["cccccccccccc"]




# A small Django project for the release steps: staticfiles (or not), and a command `say`
# that prints its words, or fails as asked.
STEP_PROJECT = {
    "manage.py": ("import os, sys\nfrom django.core.management import execute_from_command_line\n"
                  "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'project.settings')\n"
                  "execute_from_command_line(sys.argv)\n"),
    "project/__init__.py": "",
    "project/settings.py": (
        "import os\nSECRET_KEY = 'x' * 50\nUSE_TZ = True\nROOT_URLCONF = 'project.urls'\n"
        "INSTALLED_APPS = ['project', 'django.contrib.contenttypes'] + (['django.contrib.staticfiles'] if os.environ['STATIC'] else [])\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': os.environ['DB']}}\n"
        "STATIC_URL = '/static/'\nSTATIC_ROOT = os.environ['STATIC'] or None\n"
        "STATICFILES_DIRS = [STATIC_ROOT] if os.environ['FAIL'] == 'check' else []  # staticfiles.E002\n"),
    "project/urls.py": "urlpatterns = []\n",
    "project/static/app.css": "body {}\n",
    "project/management/__init__.py": "",
    "project/management/commands/__init__.py": "",
    "project/management/commands/say.py": (
        "import os\nfrom django.core.management.base import BaseCommand, CommandError\n\n\n"
        "class Command(BaseCommand):\n    def add_arguments(self, parser):\n        parser.add_argument('words', nargs='*')\n\n"
        "    def handle(self, *args, words, **options):\n"
        "        if os.environ['FAIL'] == 'say':\n            raise CommandError('say broke')\n"
        "        with open(os.environ['LOG'], 'a') as log:\n            log.write('|'.join(words) + '\\n')\n"),
    "djdeploy_wsgi.py": "import django\nif __import__('os').environ['FAIL'] == 'wsgi':\n    raise ImportError('wsgi broke')\ndjango.setup()\n",
}


def steps(tmp_path, fail="", commands="say 'two words' \\$HOME\nsay again", static=True, inside=False, known=False):
    """release.sh's app_steps with its unit run in place, on STEP_PROJECT: (result, what
    `say` was told, whether STATIC_ROOT was collected)."""
    release = tmp_path / "new"
    for name, text in STEP_PROJECT.items():
        (release / name).parent.mkdir(parents=True, exist_ok=True)
        (release / name).write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this venv's, with Django
    (bin_dir / "python").chmod(0o755)
    log = tmp_path / "said"
    log.write_text("")
    (tmp_path / "units").write_text("")  # one line per unit this call starts
    call = (f'as_app() {{ echo unit >> {tmp_path / "units"}; shift; (cd {release} && "$@"); }}; '
            'database_path() { :; }; app_steps')
    release.chmod(0o755)
    result = run_function(tmp_path, call, {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log), "FAIL": fail, "NEW": str(release), "APP_USER": "nobody",
        "STATIC_DIR": ".djdeploy/static" if known else "",
        "STATIC": (str(release / ".djdeploy" / "static") if inside else str(tmp_path / "static")) if static else "", "DB": str(tmp_path / "db.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONPATH": str(release), "ID": "0123456789ab",
        "WSGI": "project.wsgi:application", "CHECK_LEVEL": "ERROR", "RELEASE_COMMANDS": commands})
    collected = (release / ".djdeploy" / "static" if inside else tmp_path / "static") / "app.css"
    return result, log.read_text().splitlines(), collected.is_file()


def test_the_release_steps_run_in_order_each_by_manage_py_with_the_commands_words_intact(tmp_path):
    result, said, collected = steps(tmp_path)
    assert result.returncode == 0, result.stderr
    assert said == ["two words|$HOME", "again"]  # the words as the deploy quoted them, in order
    assert collected and (tmp_path / "db.sqlite3").stat().st_size > 0  # collectstatic ran, and migrate
    shutil.rmtree(tmp_path / "new")
    shutil.rmtree(tmp_path / "static")
    result, said, collected = steps(tmp_path, commands="", static=False)  # no staticfiles, nothing more
    assert result.returncode == 0 and said == [] and not collected, result.stderr
    shutil.rmtree(tmp_path / "new")
    result, _, collected = steps(tmp_path, commands="", inside=True)  # STATIC_ROOT in the release
    static = tmp_path / "new" / ".djdeploy" / "static"
    assert result.returncode == 0 and collected, result.stderr
    assert static.owner() == "nobody" and (tmp_path / "new").owner() == "root"  # that folder only
    assert (tmp_path / "units").read_text().count("unit") == 2  # checks, then collectstatic
    for commands, units in [("", 1), ("say again", 2)]:  # the deploy's own STATIC_ROOT: one unit unless
        shutil.rmtree(tmp_path / "new")                    # release commands need the release writable
        result, _, collected = steps(tmp_path, commands=commands, inside=True, known=True)
        assert result.returncode == 0 and collected, result.stderr
        assert (tmp_path / "units").read_text().count("unit") == units
        assert static.owner() == "nobody" and ((tmp_path / "new").owner() == "root") == (not commands)


def test_a_failed_release_step_is_named_and_only_its_output_shown(tmp_path):
    for fail, name, error in [
            ("wsgi", "the WSGI import (project.wsgi:application)", "ImportError: wsgi broke"),
            ("check", "manage.py check --deploy --fail-level ERROR", "ERRORS:"),
            ("say", "manage.py say 'two words' \\$HOME", "CommandError: say broke")]:
        result, said, _ = steps(tmp_path, fail=fail)
        assert result.returncode == 1
        lines = result.stderr.splitlines()
        assert lines[0] == f"release: 0123456789ab failed {name}:", result.stderr
        assert lines[1] == f"    {error}", result.stderr
        assert "release-step-" not in result.stderr
        assert not (tmp_path / "new").exists()  # nothing of the release left
        assert said == []  # and nothing ran after the step that failed
