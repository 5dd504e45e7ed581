"""The release's code: the app's files as a tar archive, named by their content (the tree hash)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from djdeploy.build import cache
from djdeploy.build.cache import BuildError, once, replace_file, sha256_file
from djdeploy.config.envfile import folder as secrets_folder

# Never shipped: caches, local databases, virtualenvs, secrets.
EXCLUDED_NAMES = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".env", ".pytest_cache", ".djdeploy"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".sqlite3", ".log")


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
    archive = cache.CACHE / "source" / f"{digest}.tar"
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
    replace_file(archive, buffer.getvalue())
    return digest, archive
