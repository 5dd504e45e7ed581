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

import contextlib
import fcntl
import functools
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

from djdeploy.config.envfile import folder as secrets_folder
from djdeploy.config.requirements import INCLUDE, index_options

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
    git ignores (when the app is in a git work tree), never the secrets folder, caches,
    local databases or .env; a symlink only to a file shipped itself (BuildError names one
    that leads out of the app or to a file that stays behind: its bytes would ship under
    the link's name, and a static folder would serve them)."""
    root = app_path.resolve()
    secrets = secrets_folder().resolve()
    listed = _git_listed(app_path)
    files, links = set(), []
    for dirpath, dirnames, filenames in os.walk(app_path):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_NAMES and Path(dirpath, d).resolve() != secrets]
        for name in filenames:
            if name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES):
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(app_path).as_posix()
            if listed is not None and rel not in listed:
                continue
            if path.is_symlink():
                links.append((rel, path))
            elif path.is_file():
                files.add(rel)
    for rel, path in links:
        target = path.resolve()
        if root not in target.parents:
            raise BuildError(f"{app_path}/{rel} is a symlink to {os.readlink(path)}, outside the app: "
                             "copy what it points to into the app, or remove it")
        if target.is_file() and target.relative_to(root).as_posix() not in files:
            raise BuildError(f"{app_path}/{rel} is a symlink to {os.readlink(path)}, which a release does not "
                             "hold (git ignores it, or it is a secret, a database, .env or a cache): its bytes "
                             "would ship under the link's name: remove the link, or link to a file of the app")
        if target.is_file():
            files.add(rel)
    return sorted(files, key=lambda p: ("./" + p).encode())


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


# --- The locks --------------------------------------------------------------------------
#
# A lock file is pip requirements text, one wheel a line, sorted by name:
#     django==5.2.19 --hash=sha256:<64 hex>
# One per (requirements, Python minor version, machine): CACHE/locks/<16 hex>.lock, the
# same text as its wheelhouse's requirements-<12 hex>.lock.

# The CPython versions a host may run the app with, oldest and newest (Debian 12 has
# 3.11, Debian 13 3.13): a host that reports another is refused before any host changes.
PYTHONS = ("3.10", "3.14")


def python_supported(version: str) -> bool:
    """True if `version` ("3.11") is a CPython minor version within PYTHONS."""
    def key(text):
        return tuple(int(part) for part in text.split("."))
    return bool(re.fullmatch(r"3\.\d{1,2}", version)) and key(PYTHONS[0]) <= key(version) <= key(PYTHONS[1])


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
# What the app hosts of a site with a files host also run: uploads written there over SFTP.
UPLOADS = ("django-storages[sftp]",)




def requirements_text(requirements: Path, seen: frozenset = frozenset()) -> bytes:
    """The requirements file's bytes and those of every file it includes (-r, -c), so a
    change to any of them resolves again."""
    text = requirements.read_bytes()
    for name in INCLUDE.findall(text.decode(errors="replace")):
        included = (requirements.parent / name).resolve()
        if included.is_file() and included not in seen:
            text += b"\0" + requirements_text(included, seen | {included})
    return text


# How locks are made; a change that makes a cached lock wrong changes it, so every lock
# made before is resolved again (2: dependency markers evaluated for the hosts' Python).
LOCK_FORMAT = "2"


def lock_path(requirements: Path, python: str, machine: str, extras: tuple = ()) -> Path:
    """Where the lock of `requirements` for `python` on `machine` is cached: keyed by their
    content (and the app server's name, and `extras`), the Python, the machine and LOCK_FORMAT."""
    key = hashlib.sha256(requirements_text(requirements) + "\0".join([*SERVER, *extras]).encode()
                         + f"\0{python}\0{machine}\0{LOCK_FORMAT}".encode())
    return CACHE / "locks" / f"{key.hexdigest()[:16]}.lock"


def wheel_lock(wheels: Path) -> Path:
    """The lock file of wheelhouse `wheels`, the one its hosts install."""
    return next(wheels.glob("requirements-*.lock"))


# --- What packages need of the host -------------------------------------------------------
#
# A wheel from PyPI (manylinux) carries the C libraries it links. Some packages load one
# of the host's instead, or publish no Linux wheel at all: they are C code, which the
# controller does not compile (it builds pure-Python source distributions only).

def system_packages(lock: str) -> list[str]:
    """The Debian packages the wheels of `lock` need on the host (installed with the
    deploy's own): libpq for psycopg without its binary wheel (it loads the system's
    libpq), and for wheels the user built of the packages below."""
    locked = pins(lock)
    needed = []
    if "psycopg" in locked and "psycopg-binary" not in locked:
        needed.append("libpq5")
    needed += [NATIVE[name][3] for name in locked if name in NATIVE and NATIVE[name][3]]
    return list(dict.fromkeys(needed))


# {name: (what PyPI offers, what a build needs, what to use instead, the runtime library
# on Debian 12 and 13 when the user brings a wheel of it, or "")}
NATIVE = {
    "mysqlclient": ("publishes no wheel for Linux (Windows only)",
                    "default-libmysqlclient-dev, pkg-config and build-essential",
                    "PyMySQL (pure Python: pymysql.install_as_MySQLdb() in the app's settings)", "libmariadb3"),
    "python-ldap": ("publishes no wheel (source only)", "libldap2-dev, libsasl2-dev and build-essential",
                    "ldap3 (pure Python; Debian's python3-ldap is outside the app's virtualenv)", ""),
    "psycopg2": ("publishes no wheel for Linux since Python 3.8", "libpq-dev and build-essential",
                 "psycopg2-binary, psycopg[binary], or plain psycopg (the deploy installs libpq5 for it)", "libpq5"),
    "psycopg-c": ("publishes no wheel (source only)", "libpq-dev and build-essential",
                  "psycopg[binary], or plain psycopg (the deploy installs libpq5 for it)", "libpq5"),
    "pillow": ("", "libjpeg-dev, zlib1g-dev and build-essential", "", ""),
}


def _native(name: str, spec: str, required: str, where: str, requirements: Path, offered: str) -> str:
    """One line for a package in NATIVE that has no wheel for `where`: why, and what to do."""
    published, build, instead, runtime = NATIVE[name]
    if name == "pillow":  # wheels for every Python it supports, with its libraries inside
        return (f"{spec}{required} has no wheel for {where}, and building Pillow from source needs {build} on "
                f"the host, which the deploy does not do (it ships wheels): pin a version of Pillow that has "
                f"one in {requirements} ({offered}); its wheels carry the libraries it needs")
    bring = (f" (the deploy then installs {runtime} on the hosts)" if runtime else
             ", and add the hosts' libldap package (libldap-2.5-0 on Debian 12) to debian_packages")
    return (f"{spec}{required} {published}, and it is C code, which the deploy does not compile (it ships "
            f"wheels; it builds pure-Python ones only): use {instead} in {requirements}; or build a wheel of it "
            f"for {where} on a Debian like the hosts' with {build} (pip wheel {name}), and name its folder "
            f"with --find-links in {requirements} and in package_indexes{bring}")


def _name(spec: str) -> str:
    """The canonical project name of a requirement specifier ("Django>=6" -> "django")."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return canonical(match[1]) if match else ""


def _platform_args(python: str, machine: str) -> list[str]:
    abi = "cp" + python.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none"]
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 40)]
    platforms += [f"manylinux2014_{machine}", f"linux_{machine}"]
    for platform in platforms:
        args += ["--platform", platform]
    return args


# pip download evaluates dependencies' environment markers for the Python that runs it (this
# machine's), whatever --python-version says: redis 8.2 needs async-timeout only below Python
# 3.11.3, so a lock made on 3.11.7 left it out and Debian 12's 3.11.2 could not import redis;
# `; python_version >= "3.12"` deps were lost for Debian 13 the same way. pip is run with the
# markers' environment of the hosts' Python: `python`.0, which takes every backport any
# release of that minor version needs (one too many is harmless, one too few is not).
TARGET_MARKERS = """
import sys
from pip._vendor.packaging import markers
python, machine = sys.argv.pop(1), sys.argv.pop(1)
_env = dict(markers.default_environment(), python_version=python, python_full_version=python + ".0",
            implementation_name="cpython", implementation_version=python + ".0", platform_machine=machine,
            platform_python_implementation="CPython", platform_system="Linux", sys_platform="linux", os_name="posix")
markers.default_environment = lambda: dict(_env)
from pip._internal.cli.main import main
sys.exit(main())
"""


def _pip_for(python: str, machine: str) -> list[str]:
    """pip, with environment markers evaluated for CPython `python` on Linux `machine`."""
    return [sys.executable, "-c", TARGET_MARKERS, python, machine]


def _pip_download(args: list[str], python: str, machine: str, dest: Path, allowed: tuple = (),
                  dry: bool = False) -> subprocess.CompletedProcess:
    """pip download of wheels only, for `python`: nothing is built here and no package's
    code runs. A package published as source only stops the run (BuildError), unless
    `allowed` (data's source_builds) names it: it is then built into a wheel in a sandbox
    (`_pure_wheel`), when it is pure Python (the same on every Python and machine), and the
    download tried again; a dry run (`dry`) builds nothing and says what it would build."""
    built = CACHE / "built"
    built.mkdir(parents=True, exist_ok=True)
    tried = set()
    while True:
        command = [*_pip_for(python, machine), "download", "--disable-pip-version-check",
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
        wanted = [spec for spec in wanted if _name(spec) not in NATIVE]  # C code: never built here
        wanted = [spec for spec in wanted if not _for_another_python(spec, result.stdout)]
        sources = [spec for spec in wanted if _has_source(spec, index, python, machine, built)]
        refused = [spec for spec in sources if not source_allowed(spec, allowed)]
        if refused:
            spec, name = refused[0], _name(refused[0])
            files = [a for i, a in enumerate(args[1:]) if args[i] == "-r"]
            raise BuildError(f"{spec} has no wheel for Python {python} ({machine}), only a source distribution, "
                             f"and building one runs its code on this machine: pin a version that has a wheel in "
                             f"{files[0] if files else 'the requirements'}, or allow building it from source (in a "
                             f"sandbox, pure Python only) with source_builds = [\"{name}\"] in group_data or the "
                             f"app's djdeploy.toml")
        if sources and dry:
            for spec in sources:
                print(f"would build {spec} from source (source_builds allows it)", file=sys.stderr, flush=True)
            raise BuildError(f"would build {', '.join(sources)} from source: a dry run builds nothing, and the "
                             "lock, release and virtualenv depend on what it builds: run without --dry to build it "
                             "(in a sandbox), then --dry shows the plan")
        if not any([_pure_wheel(spec, built, index) for spec in sources]):
            return result


def _for_another_python(spec: str, output: str) -> bool:
    """True if pip ignored a version that `spec` asks for because it needs another Python
    (Django 6 on 3.11): the answer is to pin another version (`_why`), not to build one."""
    from packaging.requirements import InvalidRequirement, Requirement
    ignored = re.search(r"require a different python version: (.*)$", output, re.M)
    try:
        wanted = Requirement(spec).specifier
    except InvalidRequirement:
        return False
    versions = re.findall(r"(\S+) Requires-Python", ignored[1]) if ignored else []
    return any(wanted.contains(version, prereleases=True) for version in versions)


def source_allowed(spec: str, allowed) -> bool:
    """True if data's source_builds (`allowed`: names, or "*") lets `spec` be built from source."""
    return "*" in allowed or _name(spec) in {canonical(name) for name in allowed}


SKIPPED_SOURCE = re.compile(r"Skipping link: No sources permitted for ([A-Za-z0-9][A-Za-z0-9._-]*): (\S+)")


def _has_source(spec: str, index: str, python: str, machine: str, built: Path) -> bool:
    """True if the index offers a source distribution of `spec`'s project (pip, told wheels
    only, logs each one it skips): asked without downloading or building anything."""
    with tempfile.TemporaryDirectory(prefix=".probe-", dir=built.parent) as tmp:
        Path(tmp, "probe.txt").write_text(index + spec + "\n")
        probe = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-vv",
                                "--no-deps", *_platform_args(python, machine), "--find-links", str(built),
                                "-d", f"{tmp}/out", "-r", f"{tmp}/probe.txt"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return any(canonical(name) == _name(spec) and not link.endswith(".whl")
               for name, link in SKIPPED_SOURCE.findall(probe.stdout))


INDEX_OPTION = re.compile(r"^\s*(--index-url|-i|--extra-index-url|--find-links|-f|--trusted-host|--no-index)\b.*$", re.M)


def _index_options(args: list[str]) -> str:
    """The index options of the requirements file among pip's `args`, as requirements lines
    (a --find-links folder named relative to the file made absolute)."""
    files = [Path(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg == "-r"]
    lines = []
    for f in files:
        for option, value in index_options(f):
            if option in ("--find-links", "-f") and "://" not in value and (f.parent / value).exists():
                value = str((f.parent / value).resolve())
            lines.append(f"{option} {value}".strip() + "\n")
    return "".join(lines)


# The sandbox a source build runs in (bubblewrap): an unprivileged user, a read-only /usr
# and Python, a private /tmp and HOME, the network (the index), nothing else of this machine.
NOBODY = 65534
PASSED = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST", "PIP_NO_INDEX",
          "PIP_DEFAULT_TIMEOUT", "PIP_TIMEOUT", "PIP_RETRIES", "PIP_CERT", "SSL_CERT_FILE", "SSL_CERT_DIR",
          "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
ETC = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/ssl",
       "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/pip.conf", "/etc/localtime", "/etc/mime.types")


def _local_paths(text: str) -> list[str]:
    """The existing absolute local paths named in pip settings `text` (file:// URLs too)."""
    found = []
    for word in re.split(r"[\s,]+", text):
        path = word[len("file://"):] if word.startswith("file://") else word
        if path.startswith("/") and os.path.exists(path):
            found.append(os.path.realpath(path))
    return found


def sandbox(command: list[str], work: Path, sources: list[str] = ()) -> subprocess.CompletedProcess:
    """Run `command` (pip, by the controller's Python interpreter) in bubblewrap: as nobody
    without capabilities, in new user, PID, IPC, UTS and mount namespaces, seeing a
    read-only /usr, the Python installation, what DNS and TLS need from /etc and the local
    index folders `sources`, with `work` (/build) its only writable folder beside a private
    /tmp (its HOME); no operator home, project folder, secrets, fleet state, SSH agent or
    DJDEPLOY_* variable. The network is shared: the build fetches its build tools."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise BuildError("building from source (source_builds) needs bubblewrap, which is not installed: "
                         "apt-get install bubblewrap (make deps does)")
    env = {"HOME": "/tmp", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": "/build/pip",
           "PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1",
           "PIP_CONFIG_FILE": "/etc/pip.conf" if os.path.exists("/etc/pip.conf") else os.devnull}
    passed = {name: os.environ[name] for name in PASSED if name in os.environ}
    env.update(passed)
    # nobody in a user namespace of its own, without capabilities (mapped to this user outside).
    args = [bwrap, "--unshare-all", "--share-net", "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv",
            "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--bind", str(work), "/build", "--chdir", "/build"]
    for link in ("bin", "lib", "lib32", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            args += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
    prefix = os.path.realpath(sys.base_prefix)
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    for path in ETC:
        args += ["--ro-bind-try", path, path]
    private = [Path.home(), secrets_folder(), Path("/var/lib/djdeploy"), Path("/tmp"), Path("/root")]
    for path in dict.fromkeys([*sources, *_local_paths(" ".join(passed.values()))]):
        # An index folder only: never one that holds (or is) a home, the secrets or the state.
        if not any(Path(path) == p.resolve() or Path(path) in p.resolve().parents for p in private):
            args += ["--ro-bind", path, path]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return subprocess.run([*args, "--", *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd="/")


def _pure_wheel(spec: str, built: Path, index: str = "") -> bool:
    """Build `spec` from its source distribution into a wheel in `built`, if the wheel is
    pure Python (py3-none-any); False if it has no source either, or is not pure. The
    source comes from the index the requirements name (`index`: their index options).
    Download and build both run in `sandbox` (fetching a source distribution builds its
    metadata: its code runs), in a folder of a temporary directory only they write."""
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    with tempfile.TemporaryDirectory(prefix="djdeploy-source-") as tmp:
        work = Path(tmp, "work")
        work.mkdir()
        shutil.copytree(Path(pip_module().__file__).parent, work / "pip" / "pip",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (work / "source.txt").write_text(index + spec + "\n")
        for path in work.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        sources = _local_paths(index)
        pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        fetched = sandbox([*pip, "download", "--quiet", "--no-deps", "--no-binary=:all:", "-d", "/build/source",
                           "-r", "/build/source.txt"], work, sources)
        found = sorted(p.name for p in (work / "source").iterdir()) if (work / "source").is_dir() else []
        if fetched.returncode or len(found) != 1:
            return False
        print(f"Building a wheel of {spec} from its source, in a sandbox (source_builds allows it)",
              file=sys.stderr, flush=True)
        made = sandbox([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", "/build/wheel", f"/build/source/{found[0]}"],
                       work, sources)
        wheels = sorted((work / "wheel").glob("*.whl")) if (work / "wheel").is_dir() else []
        if made.returncode or len(wheels) != 1 or not wheels[0].name.endswith("-none-any.whl"):
            return False  # not pure Python: it would need building for each host's Python
        # The sandbox wrote it: a plain file of its own (not a link to one of this machine's).
        fd = os.open(wheels[0], os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise BuildError(f"the build of {spec} from source made {wheels[0].name}, not a plain file: "
                                 "refused (remove it from source_builds)")
            content = handle.read()
        # Named by its content (a build tag): a build here is not byte for byte repeatable, and
        # a host that has a wheel of that name keeps it (the wheelhouse compares names).
        parts = wheels[0].name[:-len(".whl")].split("-")
        tag = "0" + hashlib.sha256(content).hexdigest()[:12]
        _replace(built / ("-".join([*parts[:2], tag, *parts[-3:]]) + ".whl"), content)
        return True


def pip_module():
    import pip
    return pip


def _unreachable(output: str) -> bool:
    return any(marker in output for marker in NETWORK_ERRORS)


def _why(output: str, requirements: Path, python: str, machine: str) -> str:
    """pip's failure to download `requirements` for `python`, as one line naming the
    requirement at fault and what to do."""
    where = f"Python {python} ({machine})"
    missing = re.search(r"satisfies the requirement (\S+?);?(?: [^()]*)?(?: \(from ((?:[^()]|\([^()]*\))*)\))? "
                        r"\(from versions: ([^)]*)\)", output)
    if missing:
        spec, parent, versions = missing.groups()
        required = f" (required by {parent.split('->')[0].strip()})" if parent and "-r " not in parent else ""
        if _unreachable(output):
            return (f"{spec}{required}: could not reach the package index to download it for {where}; "
                    f"check the network (or pip's index settings) and run again")
        offered = versions.split(", ")
        shown = f"versions with one: {'..., ' if len(offered) > 5 else ''}{', '.join(offered[-5:])}"
        if _name(spec) in NATIVE:
            return _native(_name(spec), spec, required, where, requirements, shown)
        if versions.strip() == "none":
            return (f"{spec}{required}: no such package on the package index, or no wheel of it for {where}; "
                    f"check its name in {requirements}")
        # Versions pip skipped for their Requires-Python (e.g. Django 6 on Python 3.11).
        skipped = re.search(r"require a different python version: (\S+) Requires-Python (\S+)", output)
        if skipped and skipped[1] not in offered:
            return (f"{spec}{required} has no version for {where} ({shown}; {skipped[1]} needs Python "
                    f"{skipped[2]}): pin a version that runs on Python {python} in {requirements}, or move these "
                    f"hosts to a Debian with a newer Python (Debian 13 has 3.13)")
        return (f"{spec}{required} has no wheel for {where} ({shown}); pin a version that has one in {requirements}")
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
    no wheel stops the run unless `source_builds` names it (`_pip_download`).
    """
    path = lock_path(requirements, python, machine, extras)
    locked = path.read_text() if path.exists() else None
    if locked is not None:
        target = _wheels_target(requirements, locked, python, machine)
        if (target / ".complete").exists():
            return target
    (CACHE / "wheels").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".resolve-", dir=CACHE / "wheels"))
    try:
        args = ["-r", str(requirements), *SERVER, *extras]
        if locked is None:
            print(f"Resolving {requirements} for Python {python} ({machine}): every package pinned, with its hash, "
                  "until it changes", file=sys.stderr, flush=True)
        else:
            constraints = tmp / ".constraints.txt"
            constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins(locked).items()))
            args += ["-c", str(constraints)]
        print(f"Building the wheelhouse for Python {python} ({machine}) from {requirements}",
              file=sys.stderr, flush=True)
        result = _pip_download(args, python, machine, tmp, source_builds, dry)
        (tmp / ".constraints.txt").unlink(missing_ok=True)
        if result.returncode != 0:
            raise BuildError(_why(result.stdout, requirements, python, machine))
        text = lock_text(tmp)
        for name, version in pins(text).items():
            if locked is not None and pins(locked).get(name, version) != version:
                raise BuildError(f"{name}: pip chose {version} for Python {python}, not {pins(locked)[name]} "
                                 f"as locked in {path}")
        target = _finish(tmp, _wheels_target(requirements, text, python, machine), text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # moved into place, or gone
    if locked is None:
        _write(path, text)
    return target


class Release(tuple):
    """What one deploy ships: (id, code archive, wheelhouse, virtualenv key, the Debian
    packages its wheels need on the host)."""

    __slots__ = ()

    def __new__(cls, release_id, archive, wheels, venv, packages=()):
        return super().__new__(cls, (release_id, archive, wheels, venv, tuple(packages)))

    id = property(lambda self: self[0])
    archive = property(lambda self: self[1])
    wheels = property(lambda self: self[2])
    venv = property(lambda self: self[3])
    packages = property(lambda self: self[4])


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
    return Release(release_id, archive, wheels, venv, system_packages(lock))
