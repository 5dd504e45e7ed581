"""What the controller builds once per run: the dependency locks, the wheelhouses and the
source archive.

The locks: the requirements file resolved for each Python (minor version) and machine
the hosts run, every transitive package pinned with its sha256, so each host gets what
its own Python can run and no host's answer changes what another host installs. Each
lock is cached by the requirements' content, the Python and the machine, and reused
until they change, so a run that changed nothing never reaches the package index. Its
wheelhouse carries it (requirements-<12 hex>.lock) and the host installs it exactly
(`--require-hashes --no-deps`). Everything is cached by content under ~/.cache/djdeploy
(DJDEPLOY_BUILD_CACHE), so a run over many hosts builds each thing once.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from djdeploy.build import cache, installer, locks
from djdeploy.build.archive import source_archive, source_files
from djdeploy.build.cache import CACHE, BuildError, forget, lock, once, write_file
from djdeploy.build.download import download, explain, source_allowed
from djdeploy.build.locks import (PYTHONS, UPLOADS, lock_path, lock_text, pins, python_supported, requirements_text,
                                  system_packages, wheel_lock)

__all__ = ["CACHE", "PYTHONS", "UPLOADS", "BuildError", "Release", "forget", "lock", "lock_path", "pins",
           "python_supported", "release", "source_allowed", "source_files", "wheel_lock", "wheelhouse"]


def _finish(tmp: Path, target: Path, text: str) -> Path:
    """Write wheelhouse `tmp`'s lock file, then move it to `target` (unless already built,
    by this run or another one at the same time)."""
    (tmp / f"requirements-{hashlib.sha256(text.encode()).hexdigest()[:12]}.lock").write_text(text)
    (tmp / ".complete").write_text("")
    with open(target.parent / ".finish.lock", "w") as lock:  # another run may finish the same one
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            shutil.rmtree(tmp, ignore_errors=True)
            return target
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target




def _wheels_target(requirements: Path, lock: str, python: str, machine: str) -> Path:
    key = hashlib.sha256(requirements_text(requirements) + f"\0{lock}\0{python}\0{machine}".encode())
    return cache.CACHE / "wheels" / key.hexdigest()[:16]


@once
def wheelhouse(requirements: Path, python: str, machine: str, source_builds: tuple = (), dry: bool = False,
               extras: tuple = ()) -> Path:
    """A folder of wheels for `requirements` on CPython `python` (e.g. "3.11") on `machine`,
    with its lock file (requirements-<12 hex>.lock): every package pinned, with its sha256.

    Resolved for this Python alone (`pip download --only-binary=:all:` for the hosts'
    interpreter, gunicorn added), so hosts install with `--no-index` and never reach PyPI.
    The lock is cached by the requirements' content, the Python and the machine, and
    reused every later run until the requirements change: a wheelhouse built again from
    it (the cache lost its wheels) has the same versions, or the run stops. A package with
    no wheel stops the run unless `source_builds` names it (`download`).
    """
    path = lock_path(requirements, python, machine, extras)
    locked = path.read_text() if path.exists() else None
    if locked is not None:
        target = _wheels_target(requirements, locked, python, machine)
        if (target / ".complete").exists():
            return target
    (cache.CACHE / "wheels").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".resolve-", dir=cache.CACHE / "wheels"))
    try:
        args = ["-r", str(requirements), *locks.SERVER, *extras]
        if locked is None:
            print(f"Resolving {requirements} for Python {python} ({machine}): every package pinned, with its hash, "
                  "until it changes", file=sys.stderr, flush=True)
        else:
            constraints = tmp / ".constraints.txt"
            constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins(locked).items()))
            args += ["-c", str(constraints)]
        print(f"Building the wheelhouse for Python {python} ({machine}) from {requirements}",
              file=sys.stderr, flush=True)
        result = download(args, python, machine, tmp, source_builds, dry)
        (tmp / ".constraints.txt").unlink(missing_ok=True)
        if result.returncode != 0:
            raise BuildError(explain(result.stdout, requirements, python, machine))
        text = lock_text(tmp)
        for name, version in pins(text).items():
            if locked is not None and pins(locked).get(name, version) != version:
                raise BuildError(f"{name}: pip chose {version} for Python {python}, not {pins(locked)[name]} "
                                 f"as locked in {path}")
        target = _finish(tmp, _wheels_target(requirements, text, python, machine), text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # moved into place, or gone
    if locked is None:
        write_file(path, text)
    return target


class Release(tuple):
    """What one deploy ships: (id, code archive, wheelhouse, virtualenv key, the Debian
    packages its wheels need on the host, the pip wheel that installs them)."""

    __slots__ = ()

    def __new__(cls, release_id, archive, wheels, venv, packages=(), installer=None):
        return super().__new__(cls, (release_id, archive, wheels, venv, tuple(packages), installer))

    id = property(lambda self: self[0])
    archive = property(lambda self: self[1])
    wheels = property(lambda self: self[2])
    venv = property(lambda self: self[3])
    packages = property(lambda self: self[4])
    installer = property(lambda self: self[5])


def release(app_path: Path, requirements: Path, python: str, machine: str, source_builds: tuple = (),
            dry: bool = False, linked: tuple = (), extras: tuple = ()) -> Release:
    """The release of this code and its locked requirements on `python` (`machine`),
    built once per run.

    Its id is a hash of the code, the requirements, the Python, the machine and the
    versions its lock pins: the same on every host with that Python, and on every run
    with the same code and lock; hosts on another Python have their own (their release
    runs other wheels); and of `linked`, the release's paths linked to shared/ (they are part of
    its tree). `source_builds` and `dry`: see `wheelhouse`; `extras`: packages installed beside the
    requirements (UPLOADS). The virtualenv key is a hash of the lock file (e.g.
    "1a2b3c4d5e6f-py311"), so a code-only change reuses the virtualenv.
    """
    if not python_supported(python):
        raise BuildError(f"Python {python} is not one djdeploy deploys to ({PYTHONS[0]} to {PYTHONS[1]})")
    digest, archive = source_archive(app_path)
    wheels = wheelhouse(requirements, python, machine, tuple(source_builds), dry, tuple(extras))
    lock = wheel_lock(wheels).read_text()
    locked = "".join(f"{name}=={version}\n" for name, version in sorted(pins(lock).items()))
    requirements_hash = hashlib.sha256(requirements_text(requirements)).hexdigest()
    identity = f"{digest}\n{requirements_hash}\n{python} {machine}\n{locked}"
    if linked:
        identity += "".join(f"linked {path}\n" for path in linked)
    release_id = hashlib.sha256(identity.encode()).hexdigest()[:12]
    venv = f"{hashlib.sha256(lock.encode()).hexdigest()[:12]}-py{python.replace('.', '')}"
    return Release(release_id, archive, wheels, venv, system_packages(lock), installer.pip_wheel())
