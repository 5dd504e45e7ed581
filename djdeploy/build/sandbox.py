"""A source build (source_builds) in a bubblewrap sandbox: pure-Python wheels only."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from djdeploy.build.cache import BuildError, replace_file
from djdeploy.config.envfile import folder as secrets_folder

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


def pure_wheel(spec: str, built: Path, index: str = "") -> bool:
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
        replace_file(built / ("-".join([*parts[:2], tag, *parts[-3:]]) + ".whl"), content)
        return True


def pip_module():
    import pip
    return pip
