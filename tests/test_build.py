"""The deploy locks the dependencies: resolved once on the controller, every package pinned
with its hash, the same versions on every Python of the fleet, and a one-line error when a
requirement cannot be had. Uses PyPI (tiny real packages), no fleet."""

import re
import subprocess
from pathlib import Path

import pytest

from djdeploy import build

pytestmark = pytest.mark.index  # pip resolves and downloads from the package index

APP = Path(__file__).resolve().parent / "otherapp"  # any code: these tests are about requirements
# MarkupSafe 2.1.5 has CPython 3.11 wheels but none for 3.13 (3.0.0 was the first).
CP311_ONLY = ("markupsafe", "2.1.5")
SIX_1_16_SHA256 = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A build cache of this test's own, and no builds remembered from other tests."""
    monkeypatch.setattr(build, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(build, "SERVER", [])  # the lock's own mechanics, on tiny packages
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

    monkeypatch.setattr(build.subprocess, "run", counting)
    return runs


def requirements(tmp_path, text):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def wheels_of(wheels):
    return sorted(p.name for p in wheels.glob("*.whl"))


def test_unpinned_requirement_same_version_on_every_python_and_locked_with_hash(tmp_path):
    reqs = requirements(tmp_path, "six\n")
    py311 = build.release(APP, reqs, "3.11", "x86_64")
    py313 = build.release(APP, reqs, "3.13", "x86_64")

    lock = build.lock_path(reqs).read_text()
    (line,) = lock.splitlines()
    version = build.pins(lock)["six"]
    assert re.fullmatch(rf"six=={re.escape(version)} --hash=sha256:[0-9a-f]{{64}}", line)
    for release, python in ((py311, "311"), (py313, "313")):
        assert wheels_of(release.wheels) == [f"six-{version}-py2.py3-none-any.whl"]
        own = build.wheel_lock(release.wheels)
        assert own.read_text() == lock  # a pure-Python wheel: the same file, the same hash
        assert re.fullmatch(rf"[0-9a-f]{{12}}-py{python}", release.venv)
        assert own.name == f"requirements-{release.venv[:12]}.lock"
    assert py311.id == py313.id  # one release per run, whatever the hosts' Python
    assert py311.wheels != py313.wheels


def test_the_lock_pins_even_when_the_index_has_newer(tmp_path):
    """A lock made when six 1.16.0 was the newest keeps every Python at 1.16.0 (1.17.0 is
    out), until the requirements change."""
    reqs = requirements(tmp_path, "six\n")
    lock = build.lock_path(reqs)
    lock.parent.mkdir(parents=True)
    lock.write_text(f"six==1.16.0 --hash=sha256:{SIX_1_16_SHA256}\n")
    for python in ("3.11", "3.13"):
        release = build.release(APP, reqs, python, "x86_64")
        assert wheels_of(release.wheels) == ["six-1.16.0-py2.py3-none-any.whl"]
        assert build.wheel_lock(release.wheels).read_text() == lock.read_text()

    reqs.write_text("six  # changed\n")  # new requirements: resolved again
    build.forget()
    assert not build.lock_path(reqs).exists()
    release = build.release(APP, reqs, "3.11", "x86_64")
    assert wheels_of(release.wheels) != ["six-1.16.0-py2.py3-none-any.whl"]


def test_the_lock_and_wheelhouses_are_reused_without_pip(tmp_path, pip_runs):
    reqs = requirements(tmp_path, "idna\n")
    first = [build.release(APP, reqs, python, "x86_64") for python in ("3.11", "3.13")]
    assert len(pip_runs) == 2  # one resolve (with the 3.11 wheelhouse), one 3.13 wheelhouse
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
    """Locked on 3.11, the 3.13 hosts cannot have it: one line, package, version, Python."""
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


def test_no_wheel_for_the_resolving_python_is_one_line(tmp_path):
    """The same when the first host (the one that resolves) is on 3.13."""
    name, version = CP311_ONLY
    reqs = requirements(tmp_path, f"{name}=={version}\n")
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.13", "x86_64")
    message = str(error.value)
    assert "\n" not in message
    assert name in message.lower() and version in message and "Python 3.13" in message, message
    assert not build.lock_path(reqs).exists()


def test_unknown_package_is_one_line_naming_it(tmp_path):
    reqs = requirements(tmp_path, "six\ndjdeploy-no-such-package-4f1c\n")
    with pytest.raises(build.BuildError) as error:
        build.release(APP, reqs, "3.11", "x86_64")
    message = str(error.value)
    assert "\n" not in message and "djdeploy-no-such-package-4f1c" in message, message
    assert not build.lock_path(reqs).exists() and not list((build.CACHE / "wheels").iterdir())


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
    monkeypatch.setattr(build, "SERVER", ["gunicorn"])
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n")
    wheels = build.wheelhouse(requirements, "3.11", "x86_64")
    locked = build.pins(build.wheel_lock(wheels).read_text())
    assert "gunicorn" in locked and "six" in locked


def test_a_pure_python_package_published_as_source_only_is_built_here(tmp_path):
    """http_ece 1.2.1 has no wheel on PyPI: it is built once into a py3-none-any wheel and
    locked like any other, for every Python."""
    reqs = requirements(tmp_path, "http_ece==1.2.1\n")
    for python in ("3.11", "3.13"):
        release = build.release(APP, reqs, python, "x86_64")
        assert any(name.startswith("http_ece-1.2.1-") and name.endswith("-none-any.whl")
                   for name in wheels_of(release.wheels)), wheels_of(release.wheels)
        assert "http-ece==1.2.1 --hash=sha256:" in build.wheel_lock(release.wheels).read_text()


def test_a_change_to_an_included_file_resolves_again(tmp_path):
    (tmp_path / "base.txt").write_text("six==1.16.0\n")
    reqs = requirements(tmp_path, "-r base.txt\n")
    before = build.lock_path(reqs)
    (tmp_path / "base.txt").write_text("six==1.17.0\n")
    assert build.lock_path(reqs) != before
