"""The deploy locks the dependencies: resolved on the controller for each Python of the
fleet, every package pinned with its hash, one host's Python never changing what another
installs, and a one-line error when a requirement cannot be had. Uses PyPI (tiny real
packages, and Django for what differs between Pythons), no fleet."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PYINFRA, copy_project
from djdeploy import build

pytestmark = pytest.mark.index  # pip resolves and downloads from the package index

APP = Path(__file__).resolve().parent / "otherapp"  # any code: these tests are about requirements
# MarkupSafe 2.1.5 has CPython 3.11 wheels but none for 3.13 (3.0.0 was the first).
CP311_ONLY = ("markupsafe", "2.1.5")
SIX_1_16_SHA256 = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"


@pytest.fixture(scope="module")
def pip_wheel(tmp_path_factory):
    """The pinned pip every release carries (build.installer), downloaded once for this file."""
    from djdeploy.build import installer

    mp = pytest.MonkeyPatch()
    mp.setattr(build.cache, "CACHE", tmp_path_factory.mktemp("installer-cache"))
    try:
        return installer.pip_wheel()
    finally:
        build.forget()  # remembered under that cache: forgotten
        mp.undo()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch, pip_wheel):
    """A build cache of this test's own (with the pinned pip in it: build.installer), and no
    builds remembered from other tests."""
    (tmp_path / "cache" / "installer").mkdir(parents=True)
    shutil.copy(pip_wheel, tmp_path / "cache" / "installer" / pip_wheel.name)
    monkeypatch.setattr(build.cache, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(build.locks, "SERVER", [])  # the lock's own mechanics, on tiny packages
    build.forget()
    yield tmp_path / "cache"
    build.forget()


@pytest.fixture
def pip_runs(monkeypatch):
    """The pip commands the build runs (not its `git ls-files`, which lists the app's files)."""
    runs = []
    real = subprocess.run

    def counting(command, *args, **kwargs):
        if command[:1] != ["git"]:
            runs.append(command)
        return real(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    return runs


def requirements(tmp_path, text):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def wheels_of(wheels):
    return sorted(p.name for p in wheels.glob("*.whl"))


def test_each_python_has_a_lock_of_its_own_pinned_with_hashes(tmp_path):
    reqs = requirements(tmp_path, "six\n")
    py311 = build.release(APP, reqs, "3.11", "x86_64")
    py313 = build.release(APP, reqs, "3.13", "x86_64")

    for release, python in ((py311, "3.11"), (py313, "3.13")):
        lock = build.lock_path(reqs, python, "x86_64").read_text()
        (line,) = lock.splitlines()
        version = build.pins(lock)["six"]
        assert re.fullmatch(rf"six=={re.escape(version)} --hash=sha256:[0-9a-f]{{64}}", line)
        assert wheels_of(release.wheels) == [f"six-{version}-py2.py3-none-any.whl"]
        own = build.wheel_lock(release.wheels)
        assert own.read_text() == lock
        assert re.fullmatch(rf"[0-9a-f]{{12}}-py{python.replace('.', '')}", release.venv)
        assert own.name == f"requirements-{release.venv[:12]}.lock"
    # A release runs its Python's wheels: each Python has its own id, stable across runs.
    assert py311.id != py313.id and py311.wheels != py313.wheels
    build.forget()
    assert build.release(APP, reqs, "3.13", "x86_64").id == py313.id


def test_each_host_gets_what_its_own_python_runs_and_no_python_changes_another(tmp_path):
    """Unpinned Django: 5.2 for Python 3.11 (Django 6 needs 3.12), 6 for 3.13, whatever
    was resolved first; a Python outside the supported range is refused and locks nothing."""
    reqs = requirements(tmp_path, "django\n")
    py311 = build.release(APP, reqs, "3.11", "x86_64")
    lock311 = build.lock_path(reqs, "3.11", "x86_64").read_text()
    assert build.pins(lock311)["django"].startswith("5.2."), lock311
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.6", "x86_64")
    assert "\n" not in str(error.value) and "3.6" in str(error.value) and "3.10 to 3.14" in str(error.value)
    py313 = build.release(APP, reqs, "3.13", "x86_64")
    assert int(build.pins(build.wheel_lock(py313.wheels).read_text())["django"].split(".")[0]) >= 6
    build.forget()
    assert build.release(APP, reqs, "3.11", "x86_64") == py311
    assert build.lock_path(reqs, "3.11", "x86_64").read_text() == lock311
    assert sorted(p.name for p in (build.cache.CACHE / "locks").iterdir()) == sorted(
        build.lock_path(reqs, python, "x86_64").name for python in ("3.11", "3.13"))


def test_the_lock_pins_even_when_the_index_has_newer(tmp_path):
    """A lock made when six 1.16.0 was the newest keeps that Python at 1.16.0 (1.17.0 is
    out), until the requirements change."""
    reqs = requirements(tmp_path, "six\n")
    for python in ("3.11", "3.13"):
        lock = build.lock_path(reqs, python, "x86_64")
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(f"six==1.16.0 --hash=sha256:{SIX_1_16_SHA256}\n")
        release = build.release(APP, reqs, python, "x86_64")
        assert wheels_of(release.wheels) == ["six-1.16.0-py2.py3-none-any.whl"]
        assert build.wheel_lock(release.wheels).read_text() == lock.read_text()

    reqs.write_text("six  # changed\n")  # new requirements: resolved again
    build.forget()
    assert not build.lock_path(reqs, "3.11", "x86_64").exists()
    release = build.release(APP, reqs, "3.11", "x86_64")
    assert wheels_of(release.wheels) != ["six-1.16.0-py2.py3-none-any.whl"]


def test_the_lock_and_wheelhouses_are_reused_without_pip(tmp_path, pip_runs):
    reqs = requirements(tmp_path, "idna\n")
    from djdeploy.build import installer

    installer.pip_wheel()  # the pip that fills the hosts' virtualenvs: downloaded once, if not there
    pip_runs.clear()
    first = [build.release(APP, reqs, python, "x86_64") for python in ("3.11", "3.13")]
    assert len(pip_runs) == 2  # one resolve per Python, which is its wheelhouse
    assert build.release(APP, reqs, "3.13", "x86_64") == first[1]  # same run: remembered
    build.forget()  # a new run: from the build cache, not from PyPI
    again = [build.release(APP, reqs, python, "x86_64") for python in ("3.13", "3.11")]
    assert again == first[::-1]
    assert len(pip_runs) == 2


def test_same_code_and_lock_same_release_id_new_code_new_id_same_venv(tmp_path):
    reqs = requirements(tmp_path, "six\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / "views.py").write_text("A = 1\n")
    first = build.release(app, reqs, "3.11", "x86_64")
    build.forget()
    assert build.release(app, reqs, "3.11", "x86_64") == first
    (app / "views.py").write_text("A = 2\n")
    build.forget()
    changed = build.release(app, reqs, "3.11", "x86_64")
    assert changed.id != first.id and changed.venv == first.venv and changed.wheels == first.wheels


def test_no_wheel_for_the_hosts_python_is_one_line(tmp_path):
    """Pinned to a version with 3.11 wheels only: the 3.13 hosts cannot have it, in one
    line naming package, version and Python, and nothing is locked for 3.13."""
    name, version = CP311_ONLY
    reqs = requirements(tmp_path, f"{name}=={version}\n")
    py311 = build.release(APP, reqs, "3.11", "x86_64")
    assert any(w.startswith("MarkupSafe-2.1.5-cp311-cp311") for w in wheels_of(py311.wheels))
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.13", "x86_64")
    message = str(error.value)
    assert "\n" not in message
    assert name in message.lower() and version in message and "Python 3.13" in message, message
    assert "pin a version" in message, message
    assert not build.lock_path(reqs, "3.13", "x86_64").exists()


def test_unknown_package_is_one_line_naming_it(tmp_path):
    reqs = requirements(tmp_path, "six\ndjdeploy-no-such-package-4f1c\n")
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.11", "x86_64")
    message = str(error.value)
    assert "\n" not in message and "djdeploy-no-such-package-4f1c" in message, message
    assert not (build.cache.CACHE / "locks").exists() and not list((build.cache.CACHE / "wheels").iterdir())


def test_unreachable_index_is_one_line_naming_the_requirement(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_RETRIES", "1")
    reqs = requirements(tmp_path, "six\n")
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.11", "x86_64")
    message = str(error.value)
    assert "\n" not in message and message.startswith("six:") and "network" in message, message


def test_the_app_server_is_locked_even_when_the_requirements_omit_it(tmp_path, monkeypatch):
    """A tutorial's requirements.txt names Django only: gunicorn is resolved and locked too."""
    monkeypatch.setattr(build.locks, "SERVER", ["gunicorn"])
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n")
    wheels = build.wheelhouse(requirements, "3.11", "x86_64")
    locked = build.pins(build.wheel_lock(wheels).read_text())
    assert "gunicorn" in locked and "six" in locked


def test_a_package_published_as_source_only_is_refused_unless_data_allows_it(tmp_path, pip_runs):
    """http_ece 1.2.1 has no wheel on PyPI: without source_builds naming it, the run stops in
    one line naming it and the key, and nothing was downloaded or built from source."""
    reqs = requirements(tmp_path, "six\nhttp_ece==1.2.1\n")
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.11", "x86_64", ("six", "other-package"))
    message = str(error.value)
    assert "\n" not in message and message.startswith("http_ece==1.2.1 has no wheel for Python 3.11"), message
    assert 'source_builds = ["http-ece"]' in message and "pin a version" in message, message
    assert not any("--no-binary=:all:" in command or "wheel" in command for command in pip_runs), pip_runs
    assert not any("bwrap" in " ".join(command) for command in pip_runs)
    assert not (build.cache.CACHE / "locks").exists() and not list((build.cache.CACHE / "built").iterdir())


def test_a_dry_run_builds_nothing_from_source_and_says_what_it_would(tmp_path, pip_runs, capsys):
    reqs = requirements(tmp_path, "http_ece==1.2.1\n")
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.11", "x86_64", ("http-ece",), True)
    assert "\n" not in str(error.value) and str(error.value).startswith("would build http_ece==1.2.1 from source")
    assert "would build http_ece==1.2.1 from source" in capsys.readouterr().err
    assert not any("--no-binary=:all:" in command or "wheel" in command for command in pip_runs), pip_runs
    assert not list((build.cache.CACHE / "built").iterdir()) and not (build.cache.CACHE / "locks").exists()


def test_a_pure_python_package_published_as_source_only_is_built_when_allowed(tmp_path, pip_runs):
    """http_ece 1.2.1, named in source_builds: built once, in the sandbox, into a
    py3-none-any wheel and locked like any other, for every Python."""
    reqs = requirements(tmp_path, "http_ece==1.2.1\n")
    for python in ("3.11", "3.13"):
        release = build.release(APP, reqs, python, "x86_64", ("HTTP.ECE",))
        assert any(name.startswith("http_ece-1.2.1-") and name.endswith("-none-any.whl")
                   for name in wheels_of(release.wheels)), wheels_of(release.wheels)
        assert "http-ece==1.2.1 --hash=sha256:" in build.wheel_lock(release.wheels).read_text()
    builds = [command for command in pip_runs if "--no-binary=:all:" in command or "wheel" in command]
    assert builds and all(command[0].endswith("bwrap") for command in builds), builds  # never outside it
    assert len(builds) == 2  # download and wheel, once: the other Python takes the wheel built


# A source distribution whose setup.py tries what a hostile one would: read the operator's
# SSH key and the fleet's secrets, list the fleet state, write outside, and look for the
# SSH agent and the deploy's variables. What it managed goes into the wheel it builds.
PROBE_SETUP = """
import json, os
from setuptools import setup
found = {"uid": os.getuid(), "home": os.environ.get("HOME"),
         "variables": sorted(k for k in os.environ if k.startswith("DJDEPLOY_") or k == "SSH_AUTH_SOCK")}
def attempt(name, action):
    try:
        found[name] = repr(action())
    except OSError as error:
        found[name] = "refused: " + type(error).__name__
attempt("key", lambda: open(%(key)r).read())
attempt("home_key", lambda: open(os.path.expanduser("~/.ssh/id_ed25519")).read())
attempt("secrets", lambda: open(%(secrets)r).read())
attempt("root_ssh", lambda: os.listdir("/root/.ssh"))
attempt("root", lambda: os.listdir("/root"))
attempt("state", lambda: os.listdir("/var/lib/djdeploy"))
attempt("marker", lambda: open(%(marker)r, "w").write("escaped"))
attempt("dist", lambda: open(%(dist)r, "w").write("escaped"))
os.makedirs("%(name)s", exist_ok=True)
with open("%(name)s/__init__.py", "w") as handle:
    handle.write("REPORT = " + repr(json.dumps(found)) + "\\n")
setup(name="%(name)s", version="1.0", packages=["%(name)s"])
"""


def probe_sdist(dist: Path, name: str, **paths) -> Path:
    """A source distribution of `name` 1.0 in folder `dist` running PROBE_SETUP."""
    import io
    import tarfile
    dist.mkdir(parents=True, exist_ok=True)
    files = {"setup.py": PROBE_SETUP % dict(paths, name=name, dist=str(dist / "escaped")),
             "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"}
    with tarfile.open(dist / f"{name}-1.0.tar.gz", "w:gz") as sdist:
        for file, text in files.items():
            info = tarfile.TarInfo(f"{name}-1.0/{file}")
            info.size = len(text.encode())
            sdist.addfile(info, io.BytesIO(text.encode()))
    return dist


def probe_report(wheels: Path, name: str) -> dict:
    import json
    import zipfile
    (wheel,) = wheels.glob(f"{name}-1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        namespace = {}
        exec(archive.read(f"{name}/__init__.py").decode(), namespace)
    return json.loads(namespace["REPORT"])


def test_a_source_build_runs_in_a_sandbox_that_reaches_no_key_secret_or_state(tmp_path, monkeypatch):
    """Served from a --find-links folder: its setup.py runs as nobody, and reads neither the
    operator's SSH key (HOME/.ssh) nor the secrets folder, lists neither /root nor the fleet
    state, writes nothing outside, and sees no SSH agent or DJDEPLOY_* variable."""
    name = "djdeploy_probe_7c21"
    home, secrets = tmp_path / "home", tmp_path / "project" / "secrets"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PLANTED-KEY\n")
    secrets.mkdir(parents=True)
    (secrets / "all.toml").write_text('SECRET = "planted-secret"\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DJDEPLOY_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("DJDEPLOY_SECRET_TOKEN", "planted-token")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    dist = probe_sdist(tmp_path / "dist", name, key=str(home / ".ssh" / "id_ed25519"),
                       secrets=str(secrets / "all.toml"), marker=str(tmp_path / "marker"))
    reqs = requirements(tmp_path, f"--find-links {dist}\n{name}==1.0\n")
    release = build.release(APP, reqs, "3.11", "x86_64", (name,))
    report = probe_report(release.wheels, name)
    assert report["uid"] == 65534 and report["home"] == "/tmp" and report["variables"] == [], report
    for attempt in ("key", "home_key", "secrets", "root_ssh", "state", "dist"):
        assert report[attempt].startswith("refused: "), (attempt, report)
    # The marker lands, if anywhere, in the sandbox's own /tmp, gone with it: not here.
    # /root holds at most the way to the Python installation (pyenv's, under /root here).
    assert report["root"].startswith("refused: ") or ".ssh" not in report["root"], report
    assert not (tmp_path / "marker").exists() and not (dist / "escaped").exists()


def test_a_change_to_an_included_file_resolves_again(tmp_path):
    (tmp_path / "base.txt").write_text("six==1.16.0\n")
    reqs = requirements(tmp_path, "-r base.txt\n")
    before = build.lock_path(reqs, "3.11", "x86_64")
    (tmp_path / "base.txt").write_text("six==1.17.0\n")
    assert build.lock_path(reqs, "3.11", "x86_64") != before


def plan_with_pythons(project: Path, cache: Path, pythons: str) -> subprocess.CompletedProcess:
    """A dry run of the deploy of `project` to fake web hosts each reporting its Python
    (tests/fake_pythons.py: "web-a=3.11.2,web-b=3.6.15"), with build cache `cache`."""
    env = dict(os.environ, DJDEPLOY_BUILD_CACHE=str(cache), DJDEPLOY_FAKE_PYTHONS=pythons)
    env.pop("DJDEPLOY_SERVERS", None)
    return subprocess.run([PYINFRA, "--dry", "fake_pythons.py", "deploy.py"], cwd=project, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def project_requiring(tmp_path: Path, text: str) -> Path:
    project = copy_project(tmp_path / "project")
    (project / "fake_pythons.py").write_text((Path(__file__).parent / "fake_pythons.py").read_text())
    (project / "app" / "requirements.txt").write_text(text)
    return project


def locks(cache: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((cache / "locks").glob("*.lock"))}


def test_a_host_reporting_python_3_6_is_refused_and_changes_no_other_hosts_lock(tmp_path):
    """A lying host (python3 --version says 3.6.15) beside an honest 3.11 host: refused in
    one line naming it, and the 3.11 host's lock is the one it has alone, in that run and
    after (it was resolved for 3.6 and cached for every later run: Django 3.2.25)."""
    project = project_requiring(tmp_path, "django\ngunicorn\n")
    alone = plan_with_pythons(project, tmp_path / "alone", "web-a=3.11.2")
    assert alone.returncode == 0, alone.stdout[-3000:]
    (lock,) = locks(tmp_path / "alone").values()
    assert build.pins(lock)["django"].startswith("5.2."), lock

    both = plan_with_pythons(project, tmp_path / "both", "web-b=3.6.15,web-a=3.11.2")
    assert both.returncode == 1, both.stdout[-3000:]
    errors = [line for line in both.stdout.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "host @fake/web-b:" in errors[0] and "Python 3.6" in errors[0], both.stdout[-3000:]
    assert "3.10 to 3.14" in errors[0] and "no host was changed" in errors[0] and "web-a" not in errors[0]
    assert "Traceback" not in both.stdout
    assert set(locks(tmp_path / "both").values()) <= {lock}  # nothing resolved for 3.6, or for 3.11 from it
    again = plan_with_pythons(project, tmp_path / "both", "web-a=3.11.2")
    assert again.returncode == 0, again.stdout[-3000:]
    assert list(locks(tmp_path / "both").values()) == [lock]


def test_a_requirement_some_hosts_python_cannot_run_names_those_hosts_in_one_line(tmp_path):
    """Django 6 needs Python 3.12: the Debian 12 hosts (3.11) are named, with what to do;
    the Debian 13 host is not."""
    project = project_requiring(tmp_path, "django>=6\ngunicorn\n")
    result = plan_with_pythons(project, tmp_path / "cache", "web-a=3.11.2,web-new=3.13.5,web-b=3.11.2")
    assert result.returncode == 1, result.stdout[-3000:]
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stdout[-3000:]
    (error,) = errors
    assert re.match(r"error: hosts @fake/web-[ab], @fake/web-[ab]: django>=6 has no version for Python 3\.11", error), error
    assert "web-new" not in error and "needs Python >=3.12" in error, error
    assert "pin a version that runs on Python 3.11" in error and "Debian 13" in error, error
    assert error.endswith("no host was changed"), error


def test_plain_psycopg_brings_libpq_and_its_binary_wheel_does_not(tmp_path):
    """psycopg without psycopg-binary loads the system's libpq: the release names libpq5,
    which the deploy installs with its Debian packages."""
    (tmp_path / "plain").mkdir()
    (tmp_path / "binary").mkdir()
    plain = build.release(APP, requirements(tmp_path / "plain", "psycopg==3.3.9\n"), "3.11", "x86_64")
    assert "psycopg" in build.pins(build.wheel_lock(plain.wheels).read_text())
    assert plain.packages == ("libpq5",)
    binary = build.release(APP, requirements(tmp_path / "binary", "psycopg[binary]==3.3.9\n"), "3.11", "x86_64")
    assert binary.packages == ()


@pytest.mark.parametrize("spec, says", [
    ("mysqlclient", ["default-libmysqlclient-dev", "PyMySQL", "--find-links", "libmariadb3", "no wheel for Linux"]),
    ("python-ldap", ["libldap2-dev", "ldap3", "python3-ldap is outside", "source only"]),
    ("psycopg2==2.9.10", ["psycopg2-binary", "libpq-dev", "plain psycopg"]),
    ("psycopg[c]==3.3.9", ["psycopg-c", "psycopg[binary]", "libpq-dev"]),
])
def test_a_package_that_is_c_code_without_a_linux_wheel_says_what_to_do(tmp_path, spec, says, pip_runs):
    reqs = requirements(tmp_path, f"{spec}\n")
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.11", "x86_64")
    message = str(error.value)
    assert "\n" not in message and "Python 3.11" in message and "does not compile" in message, message
    for words in says:
        assert words in message, (words, message)
    assert not any(command[3:5] == ["wheel", "--disable-pip-version-check"] for command in pip_runs)  # no build tried


def test_pillow_without_a_wheel_for_the_python_says_to_pin_one(tmp_path):
    with pytest.raises(build.BuildError) as error:
        build.release(APP, requirements(tmp_path, "pillow==9.5.0\n"), "3.13", "x86_64")
    message = str(error.value)
    assert "\n" not in message and message.startswith("pillow==9.5.0 has no wheel for Python 3.13"), message
    assert "pin a version of Pillow" in message and "libjpeg-dev" in message, message


def test_dependency_markers_are_those_of_the_hosts_python(cache, tmp_path):
    """redis 8.2 needs async-timeout below Python 3.11.3 only. pip evaluated that marker for
    this machine's Python (3.11.7), so Debian 12's 3.11.2 hosts got redis without it and
    their workers could not import it; a 3.13 host needs none."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("redis==8.2.0\n")
    locked = {python: build.pins(build.wheel_lock(build.wheelhouse(requirements, python, "x86_64")).read_text())
              for python in ("3.11", "3.13")}
    assert "async-timeout" in locked["3.11"], locked
    assert "async-timeout" not in locked["3.13"], locked


def test_a_dry_run_of_the_deploy_says_what_it_would_build_and_builds_nothing(tmp_path):
    """Through pyinfra --dry, the allowance in the app's own djdeploy.toml: one line saying
    what would be built, no host changed, nothing built; without it, one line naming the key."""
    project = project_requiring(tmp_path, "django==5.2.19\ngunicorn\nhttp_ece==1.2.1\n")
    refused = plan_with_pythons(project, tmp_path / "cache", "web-a=3.11.2")
    errors = [line for line in refused.stdout.splitlines() if line.startswith("error:")]
    assert refused.returncode == 1 and len(errors) == 1, refused.stdout[-3000:]
    assert "http_ece==1.2.1 has no wheel" in errors[0] and 'source_builds = ["http-ece"]' in errors[0], errors
    (project / "app" / "djdeploy.toml").write_text('source_builds = ["http-ece"]\n')
    dry = plan_with_pythons(project, tmp_path / "cache", "web-a=3.11.2")
    errors = [line for line in dry.stdout.splitlines() if line.startswith("error:")]
    assert dry.returncode == 1 and len(errors) == 1, dry.stdout[-3000:]
    assert errors[0].startswith("error: host @fake/web-a: would build http_ece==1.2.1 from source"), errors
    assert errors[0].endswith("no host was changed") and "Traceback" not in dry.stdout
    assert not list((tmp_path / "cache" / "built").iterdir()) and not (tmp_path / "cache" / "locks").exists()
