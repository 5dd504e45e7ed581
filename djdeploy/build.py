"""What the controller builds once per run: the wheelhouse and the source archive.

Both are cached by content under ~/.cache/djdeploy, so a run whose requirements and
code did not change builds nothing, and a run over many hosts builds each once.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

CACHE = Path(os.environ.get("DJDEPLOY_BUILD_CACHE", Path.home() / ".cache" / "djdeploy"))
# Never shipped: caches, local databases, virtualenvs, secrets.
EXCLUDED_NAMES = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".env", ".pytest_cache"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".sqlite3", ".log")


class BuildError(Exception):
    """The controller could not build what the hosts need."""


# pyinfra prepares hosts concurrently (gevent patches threading): build one thing at a time.
_lock = threading.Lock()


def once(function):
    """Cache `function` per arguments, and never run it twice at once."""
    cached = functools.cache(function)

    @functools.wraps(function)
    def wrapper(*args):
        with _lock:
            return cached(*args)

    return wrapper


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_files(app_path: Path) -> list[str]:
    """The project's files to ship, as sorted POSIX paths relative to app_path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(app_path):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_NAMES]
        for name in filenames:
            if name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                found.append(path.relative_to(app_path).as_posix())
    return sorted(found, key=lambda p: ("./" + p).encode())


def tree_hash(app_path: Path) -> str:
    """sha256 of the project's files, their paths and contents: same files, same hash."""
    listing = "".join(f"{sha256_file(app_path / rel)}  ./{rel}\n" for rel in source_files(app_path))
    return hashlib.sha256(listing.encode()).hexdigest()


@once
def source_archive(app_path: Path) -> tuple[str, Path]:
    """(tree hash, tar archive) of the project; owners root, stable modes and times."""
    digest = tree_hash(app_path)
    archive = CACHE / "source" / f"{digest}.tar"
    if archive.exists():
        return digest, archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    print(f"Packing the release code from {app_path}", file=sys.stderr, flush=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in source_files(app_path):
            path = app_path / rel
            info = tarfile.TarInfo("./" + rel)
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    with tempfile.NamedTemporaryFile(dir=archive.parent, delete=False) as tmp:
        tmp.write(buffer.getvalue())
    os.rename(tmp.name, archive)
    return digest, archive


@once
def wheelhouse(requirements: Path, python: str, machine: str) -> Path:
    """A folder of wheels for `requirements` on CPython `python` (e.g. "3.11") on `machine`.

    Built with `pip download --only-binary=:all:` for the hosts' interpreter, so hosts
    install with `--no-index` and never reach PyPI.
    """
    content = requirements.read_bytes()
    key = hashlib.sha256(content + f"|{python}|{machine}".encode()).hexdigest()[:16]
    target = CACHE / "wheels" / key
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    abi = "cp" + python.replace(".", "")
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 40)]
    platforms += [f"manylinux2014_{machine}", f"linux_{machine}"]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
               "--abi", abi, "--abi", "abi3", "--abi", "none", "-r", str(requirements), "-d", str(tmp)]
    for platform in platforms:
        command += ["--platform", platform]
    print(f"Building the wheelhouse for Python {python} ({machine}) from {requirements}",
          file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildError(f"could not download wheels for {requirements} (Python {python}, "
                         f"{machine}): {last}")
    shutil.copy(requirements, tmp / f"requirements-{hashlib.sha256(content).hexdigest()[:12]}.txt")
    (tmp / ".complete").write_text("")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


class Release(tuple):
    """What one deploy ships: (id, code archive, wheelhouse, virtualenv key)."""

    __slots__ = ()

    def __new__(cls, release_id, archive, wheels, venv):
        return super().__new__(cls, (release_id, archive, wheels, venv))

    id = property(lambda self: self[0])
    archive = property(lambda self: self[1])
    wheels = property(lambda self: self[2])
    venv = property(lambda self: self[3])


def release(app_path: Path, requirements: Path, python: str, machine: str) -> Release:
    """The release of this code and these locked requirements, built once per run.

    Its id is a hash of its content: the same code and requirements give the same id on
    every run and every host. The virtualenv key depends on the requirements (and the
    hosts' Python) only, so a code-only change reuses the virtualenv.
    """
    digest, archive = source_archive(app_path)
    requirements_hash = hashlib.sha256(requirements.read_bytes()).hexdigest()
    release_id = hashlib.sha256(f"{digest}\n{requirements_hash}\n".encode()).hexdigest()[:12]
    wheels = wheelhouse(requirements, python, machine)
    venv = f"{requirements_hash[:12]}-py{python.replace('.', '')}"
    return Release(release_id, archive, wheels, venv)
