"""The build cache (~/.cache/djdeploy, DJDEPLOY_BUILD_CACHE), where everything built is kept
by content, and the lock that makes a run build each thing once."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
from pathlib import Path

from djdeploy import cachedir

CACHE = cachedir.CACHE


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


def replace_file(path: Path, content: bytes) -> None:
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


def write_file(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, text.encode())
