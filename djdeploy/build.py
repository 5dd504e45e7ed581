"""What the controller builds once per run: the dependency lock, the wheelhouses and the
source archive.

The lock: the requirements file resolved once, every transitive package pinned with its
sha256, cached by the requirements' content under the build cache and reused until they
change, so a run that changed nothing never reaches the package index and every host of
a run (whatever its Python) gets the same versions. Each host Python's wheelhouse is
downloaded constrained to the lock and carries its own lock file, which the host installs
exactly (`--require-hashes --no-deps`). Everything is cached by content under
~/.cache/djdeploy (DJDEPLOY_BUILD_CACHE), so a run over many hosts builds each thing once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

from djdeploy.config.envfile import folder as secrets_folder

CACHE = Path(os.environ.get("DJDEPLOY_BUILD_CACHE", Path.home() / ".cache" / "djdeploy"))
# Never shipped: caches, local databases, virtualenvs, secrets.
EXCLUDED_NAMES = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".env", ".pytest_cache", ".djdeploy"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".sqlite3", ".log")
# pip's complaints when the index cannot be reached (it then reports "from versions: none").
NETWORK_ERRORS = ("NewConnectionError", "Failed to establish a new connection", "Max retries exceeded",
                  "Temporary failure in name resolution", "Name or service not known", "ConnectTimeoutError",
                  "Network is unreachable", "ProxyError", "SSLError", "ReadTimeoutError")


class BuildError(Exception):
    """The controller could not build what the hosts need (its message is one line)."""


# pyinfra prepares hosts concurrently (gevent patches threading): build one thing at a time.
# Functions under `once` must not call one another (its lock is not reentrant).
_locks = {}
_caches = []


def lock(name: str):
    """The lock called `name`, made by threading.Lock as it is when first asked: gevent's
    once pyinfra_cli has patched it (hosts prepare in greenlets). A lock made at import,
    before the patch, would block the only thread instead of one greenlet."""
    key = (name, threading.Lock)
    return _locks.get(key) or _locks.setdefault(key, threading.Lock())


def once(function):
    """Cache `function` per arguments, and never run it twice at once."""
    cached = functools.cache(function)
    _caches.append(cached)

    @functools.wraps(function)
    def wrapper(*args):
        with lock("build"):
            return cached(*args)

    return wrapper


def forget():
    """Forget what this process built (a new run then finds it in the build cache)."""
    for cached in _caches:
        cached.cache_clear()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git_listed(app_path: Path) -> set[str] | None:
    """The files git would keep under app_path (tracked, or untracked and not ignored), as
    POSIX paths relative to it; None outside a git work tree."""
    try:
        result = subprocess.run(["git", "-C", str(app_path), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard", "--", "."],
                                capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return {name for name in result.stdout.decode(errors="surrogateescape").split("\0") if name}


def source_files(app_path: Path) -> list[str]:
    """The project's files to ship, as sorted POSIX paths relative to app_path: never what
    git ignores (when the app is in a git work tree), never the secrets folder, never a
    symlink that leads out of the app (BuildError)."""
    root = app_path.resolve()
    secrets = secrets_folder().resolve()
    listed = _git_listed(app_path)
    found = []
    for dirpath, dirnames, filenames in os.walk(app_path):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_NAMES and Path(dirpath, d).resolve() != secrets]
        for name in filenames:
            if name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES):
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(app_path).as_posix()
            if listed is not None and rel not in listed:
                continue
            if path.is_symlink() and root not in path.resolve().parents:
                raise BuildError(f"{app_path}/{rel} is a symlink to {os.readlink(path)}, outside the app: "
                                 "copy what it points to into the app, or remove it")
            if path.is_file():
                found.append(rel)
    return sorted(found, key=lambda p: ("./" + p).encode())


def tree_hash(app_path: Path, files: list[str] | None = None) -> str:
    """sha256 of the project's files (`source_files`, unless given), their paths and
    contents: same files, same hash."""
    listing = "".join(f"{sha256_file(app_path / rel)}  ./{rel}\n" for rel in (source_files(app_path) if files is None else files))
    return hashlib.sha256(listing.encode()).hexdigest()


@once
def source_archive(app_path: Path) -> tuple[str, Path]:
    """(tree hash, tar archive) of the project; owners root, stable modes and times."""
    files = source_files(app_path)  # walked (and asked of git) once, for the hash and the archive
    digest = tree_hash(app_path, files)
    archive = CACHE / "source" / f"{digest}.tar"
    if archive.exists():
        return digest, archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    print(f"Packing the release code from {app_path}", file=sys.stderr, flush=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in files:
            path = app_path / rel
            info = tarfile.TarInfo("./" + rel)
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    _replace(archive, buffer.getvalue())
    return digest, archive


# --- The lock ---------------------------------------------------------------------------
#
# A lock file is pip requirements text, one wheel a line, sorted by name:
#     django==5.2.19 --hash=sha256:<64 hex>
# The run's lock (CACHE/locks/<requirements sha256[:16]>.lock) is the wheelhouse lock of
# the Python that resolved it; every wheelhouse has its own (requirements-<12 hex>.lock).


def canonical(name: str) -> str:
    """A project name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, str]:
    """{canonical name: version} of a lock file's text."""
    found = {}
    for line in lock_text.splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            found[canonical(match[1])] = match[2]
    return found


def lock_text(folder: Path) -> str:
    """The lock of the wheels in `folder`: each `name==version --hash=sha256:...`."""
    lines = {}
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        lines[canonical(name)] = f"{canonical(name)}=={version} --hash=sha256:{sha256_file(wheel)}\n"
    return "".join(lines[name] for name in sorted(lines))


# What the deploy itself runs in every app's virtualenv, whether or not its requirements
# name it (a tutorial's requirements.txt often has Django only): the app server.
SERVER = ["gunicorn"]


INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)", re.M)


def requirements_text(requirements: Path, seen: frozenset = frozenset()) -> bytes:
    """The requirements file's bytes and those of every file it includes (-r, -c), so a
    change to any of them resolves again."""
    text = requirements.read_bytes()
    for name in INCLUDE.findall(text.decode(errors="replace")):
        included = (requirements.parent / name).resolve()
        if included.is_file() and included not in seen:
            text += b"\0" + requirements_text(included, seen | {included})
    return text


def lock_path(requirements: Path) -> Path:
    """Where the run's lock of `requirements` is cached: keyed by their content."""
    key = hashlib.sha256(requirements_text(requirements) + "\0".join(SERVER).encode())
    return CACHE / "locks" / f"{key.hexdigest()[:16]}.lock"


def wheel_lock(wheels: Path) -> Path:
    """The lock file of wheelhouse `wheels`, the one its hosts install."""
    return next(wheels.glob("requirements-*.lock"))


def _platform_args(python: str, machine: str) -> list[str]:
    abi = "cp" + python.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none"]
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 40)]
    platforms += [f"manylinux2014_{machine}", f"linux_{machine}"]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def _pip_download(args: list[str], python: str, machine: str, dest: Path) -> subprocess.CompletedProcess:
    """pip download of wheels only, for `python`; a package published as source only is
    built into a wheel here first, when it is pure Python (it is then the same on every
    Python and machine), and the download tried again."""
    built = CACHE / "built"
    built.mkdir(parents=True, exist_ok=True)
    tried = set()
    while True:
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                   *_platform_args(python, machine), "--find-links", str(built), "-d", str(dest), *args]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode == 0 or _unreachable(result.stdout):
            return result
        # What pip found no wheel of: named directly, or as what a candidate "depends on".
        wanted = re.findall(r"No matching distribution found for (\S+)", result.stdout)
        wanted += re.findall(r" depends on ([A-Za-z0-9][\w.\-]*(?:[<>=!~]=?[\w.*]+)?)\s*$", result.stdout, re.M)
        wanted = [spec for spec in dict.fromkeys(wanted) if spec not in tried]
        tried.update(wanted)
        index = _index_options(args)
        if not any([_pure_wheel(spec, built, index) for spec in wanted]):
            return result


INDEX_OPTION = re.compile(r"^\s*(--index-url|-i|--extra-index-url|--find-links|-f|--trusted-host|--no-index)\b.*$", re.M)


def _index_options(args: list[str]) -> str:
    """The index options of the requirements file among pip's `args`, as requirements lines."""
    files = [Path(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg == "-r"]
    return "".join(m[0] + "\n" for f in files if f.is_file() for m in INDEX_OPTION.finditer(f.read_text()))


def _pure_wheel(spec: str, built: Path, index: str = "") -> bool:
    """Build `spec` from its source distribution into a wheel in `built`, if the wheel is
    pure Python (py3-none-any); False if it has no source either, or is not pure. The
    source comes from the index the requirements name (`index`: their index options)."""
    with tempfile.TemporaryDirectory(prefix=".source-", dir=built.parent) as tmp:
        Path(tmp, "source.txt").write_text(index + spec + "\n")
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                                  "--quiet", "--no-deps", "--no-binary=:all:", "-d", f"{tmp}/source",
                                  "-r", f"{tmp}/source.txt"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sources = [p for p in Path(tmp, "source").iterdir() if p.is_file()] if Path(tmp, "source").is_dir() else []
        if fetched.returncode or not sources:
            return False
        print(f"Building a wheel of {spec} from its source (no wheel published)", file=sys.stderr, flush=True)
        made = subprocess.run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--quiet",
                               "--no-deps", "--wheel-dir", f"{tmp}/wheel", str(sources[0])],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wheels = list(Path(tmp, "wheel").glob("*.whl"))
        if made.returncode or len(wheels) != 1 or not wheels[0].name.endswith("-none-any.whl"):
            return False  # not pure Python: it would need building for each host's Python
        # Named by its content (a build tag): a build here is not byte for byte repeatable, and
        # a host that has a wheel of that name keeps it (the wheelhouse compares names).
        parts = wheels[0].name[:-len(".whl")].split("-")
        tag = "0" + sha256_file(wheels[0])[:12]
        shutil.move(str(wheels[0]), built / ("-".join([*parts[:2], tag, *parts[-3:]]) + ".whl"))
        return True


def _unreachable(output: str) -> bool:
    return any(marker in output for marker in NETWORK_ERRORS)


def _why(output: str, requirements: Path, python: str, machine: str) -> str:
    """pip's failure to download `requirements` for `python`, as one line naming the
    requirement at fault and what to do."""
    where = f"Python {python} ({machine})"
    missing = re.search(r"satisfies the requirement (\S+)(?: \(from ((?:[^()]|\([^()]*\))*)\))? "
                        r"\(from versions: ([^)]*)\)", output)
    if missing:
        spec, parent, versions = missing.groups()
        required = f" (required by {parent.split('->')[0].strip()})" if parent and "-r " not in parent else ""
        if _unreachable(output):
            return (f"{spec}{required}: could not reach the package index to download it for {where}; "
                    f"check the network (or pip's index settings) and run again")
        if versions.strip() == "none":
            return (f"{spec}{required}: no such package on the package index, or no wheel of it for {where}; "
                    f"check its name in {requirements}")
        offered = versions.split(", ")
        shown = ", ".join(offered[-5:])
        return (f"{spec}{required} has no wheel for {where} (versions with one: {'..., ' if len(offered) > 5 else ''}"
                f"{shown}); pin a version that has one in {requirements}")
    if _unreachable(output):
        return f"could not reach the package index for {requirements} ({where}); check the network and run again"
    causes = re.search(r"The conflict is caused by:\n((?:[ \t]+\S.*\n?)+)", output)
    if causes:
        lines = "; ".join(line.strip() for line in causes[1].splitlines())
        return f"the requirements in {requirements} conflict for {where}: {lines}"
    errors = [line[len("ERROR: "):].strip() for line in output.splitlines() if line.startswith("ERROR: ")]
    last = errors[0] if errors else (output.strip().splitlines() or ["(no output)"])[-1]
    return f"could not download the wheels of {requirements} for {where}: {last}"


def _finish(tmp: Path, target: Path, text: str) -> Path:
    """Write wheelhouse `tmp`'s lock file, then move it to `target` (unless already built)."""
    (tmp / f"requirements-{hashlib.sha256(text.encode()).hexdigest()[:12]}.lock").write_text(text)
    (tmp / ".complete").write_text("")
    if (target / ".complete").exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return target
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _replace(path: Path, content: bytes) -> None:
    """`path` holds `content`, whole or not at all: written beside it, then renamed over it;
    the temporary file goes however the write ends."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}-", delete=False) as tmp:
        try:
            tmp.write(content)
            tmp.close()
            os.rename(tmp.name, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp.name)


def _write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, text.encode())


def _wheels_target(requirements: Path, lock: str, python: str, machine: str) -> Path:
    key = hashlib.sha256(requirements_text(requirements) + f"\0{lock}\0{python}\0{machine}".encode())
    return CACHE / "wheels" / key.hexdigest()[:16]


def _resolve(requirements: Path, python: str, machine: str) -> Path:
    """The run's lock of `requirements` (see `resolve`), not serialised."""
    path = lock_path(requirements)
    if path.exists():
        return path
    (CACHE / "wheels").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".resolve-", dir=CACHE / "wheels"))
    print(f"Resolving {requirements}: every package pinned, with its hash, until it changes",
          file=sys.stderr, flush=True)
    print(f"Building the wheelhouse for Python {python} ({machine}) from {requirements}",
          file=sys.stderr, flush=True)
    try:
        result = _pip_download(["-r", str(requirements), *SERVER], python, machine, tmp)
        if result.returncode != 0:
            raise BuildError(_why(result.stdout, requirements, python, machine))
        text = lock_text(tmp)
        # The resolving Python's download is its wheelhouse too.
        _finish(tmp, _wheels_target(requirements, text, python, machine), text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # moved into place, or gone
    _write(path, text)
    return path


@once
def resolve(requirements: Path, python: str, machine: str) -> Path:
    """The run's lock of `requirements`: every package pinned, with its sha256.

    Resolved once, for the first host's Python (`python`, `machine`), and cached by the
    requirements' content: reused for every other Python and every later run until the
    requirements file changes, so a run that changed nothing never reaches the index.
    """
    return _resolve(requirements, python, machine)


def _missing_pin(output: str, locked: dict[str, str], python: str, machine: str) -> tuple[str, str] | None:
    """The first pinned package named in pip's failure that has no wheel for `python`."""
    named, errors = [], output[output.find("ERROR:"):] if "ERROR:" in output else output
    for token in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", errors):
        name = canonical(token)
        if name in locked and name not in named:
            named.append(name)
    for name in named:
        with tempfile.TemporaryDirectory(prefix=".check-", dir=CACHE / "wheels") as tmp:
            if _pip_download(["--no-deps", f"{name}=={locked[name]}"], python, machine, Path(tmp)).returncode:
                return name, locked[name]
    return None


@once
def wheelhouse(requirements: Path, python: str, machine: str) -> Path:
    """A folder of wheels for `requirements` on CPython `python` (e.g. "3.11") on `machine`,
    pinned by the run's lock, with its own lock file (requirements-<12 hex>.lock).

    Built with `pip download --only-binary=:all:` for the hosts' interpreter, constrained
    to the run's lock (`-r requirements -c lock`: the same versions on every Python, with
    environment markers still evaluated per Python), so hosts install with `--no-index`
    and never reach PyPI.
    """
    base = _resolve(requirements, python, machine)
    lock = base.read_text()
    target = _wheels_target(requirements, lock, python, machine)
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        locked = pins(lock)
        constraints = tmp / ".constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in locked.items()))
        print(f"Building the wheelhouse for Python {python} ({machine}) from {requirements}, as locked",
              file=sys.stderr, flush=True)
        result = _pip_download(["-r", str(requirements), *SERVER, "-c", str(constraints)], python, machine, tmp)
        constraints.unlink()
        if result.returncode != 0:
            missing = None if _unreachable(result.stdout) else _missing_pin(result.stdout, locked, python, machine)
            if missing:
                name, version = missing
                raise BuildError(f"{name} {version} (locked from {requirements}) has no wheel for Python {python} "
                                 f"({machine}); pin a version of {name} (or of what requires it) that has one "
                                 f"for Python {python} in {requirements}")
            raise BuildError(_why(result.stdout, requirements, python, machine))
        text = lock_text(tmp)
        for name, version in pins(text).items():
            if locked.get(name, version) != version:  # pip kept to the constraints, or says why
                raise BuildError(f"{name}: pip chose {version} for Python {python}, not {locked[name]} as locked")
        return _finish(tmp, target, text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # moved into place, or gone


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
    """The release of this code and its locked requirements, built once per run.

    Its id is a hash of the code, the requirements and the run's lock (the versions it
    pins): the same on every host of a run whatever its Python, and the same code and lock
    give the same id on every run. The virtualenv key is a hash of this Python's lock file
    (e.g. "1a2b3c4d5e6f-py311"), so a code-only change reuses the virtualenv.
    """
    digest, archive = source_archive(app_path)
    lock = resolve(requirements, python, machine).read_text()
    locked = "".join(f"{name}=={version}\n" for name, version in sorted(pins(lock).items()))
    requirements_hash = hashlib.sha256(requirements_text(requirements)).hexdigest()
    release_id = hashlib.sha256(f"{digest}\n{requirements_hash}\n{locked}".encode()).hexdigest()[:12]
    wheels = wheelhouse(requirements, python, machine)
    venv = f"{hashlib.sha256(wheel_lock(wheels).read_bytes()).hexdigest()[:12]}-py{python.replace('.', '')}"
    return Release(release_id, archive, wheels, venv)
