"""The dependency locks: what a lock file says, where each is cached, which Pythons a host
may run, and the Debian packages a lock's wheels need on the host."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from djdeploy.build import cache
from djdeploy.build.cache import sha256_file
from djdeploy.config.requirements import INCLUDE

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
    return cache.CACHE / "locks" / f"{key.hexdigest()[:16]}.lock"


def wheel_lock(wheels: Path) -> Path:
    """The lock file of wheelhouse `wheels`, the one its hosts install."""
    return next(wheels.glob("requirements-*.lock"))


# What packages need of the host.
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
