"""The base image every host boots from: a debootstrap of stock Debian, cached as a tarball
keyed by its recipe, unpacked once per suite."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from fleet.base import (BASE_DIR, BASE_PACKAGES, CACHE_DIR, FleetError, IMAGE_RECIPE_VERSION, MASKED_UNITS,
                        SUITES, log, run)

def debian_mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def image_key(suite: str) -> str:
    recipe = json.dumps([suite, BASE_PACKAGES, MASKED_UNITS, IMAGE_RECIPE_VERSION])
    return f"{suite}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def build_image(suite: str, tarball: Path) -> None:
    """debootstrap a minimal Debian, make it clonable, pack it as a zstd tarball."""
    if shutil.which("debootstrap") is None:
        raise FleetError("debootstrap is not installed: run `make deps` (apt-get install debootstrap)")
    work = CACHE_DIR / f"build-{suite}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"building the {suite} base image with debootstrap (about a minute, once)")
    started = time.monotonic()
    run("debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
        suite, str(work), debian_mirror())
    # Smaller image: caches, lists, docs, man pages and locales are not needed.
    for pattern in ["var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*",
                    "usr/share/doc/*", "usr/share/man/*", "usr/share/locale/*", "usr/share/info/*"]:
        for path in work.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    # Clonable: identity is made per host at boot or by `up`.
    (work / "etc/machine-id").write_text("")
    with contextlib.suppress(FileNotFoundError):
        (work / "var/lib/dbus/machine-id").unlink()
    for key in (work / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for unit in MASKED_UNITS:
        link = work / "etc/systemd/system" / unit
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to("/dev/null")
    wants = work / "etc/systemd/system/multi-user.target.wants/ssh.service"
    if not wants.is_symlink():  # absolute link: exists() would look outside the image
        wants.parent.mkdir(parents=True, exist_ok=True)
        wants.symlink_to("/lib/systemd/system/ssh.service")
    (work / "etc/ssh/sshd_config.d/fleet.conf").write_text(
        "# Throwaway test host: key-only logins.\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
    )
    write_stock_sources(work, suite)
    tmp = tarball.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        tar = subprocess.Popen(["tar", "-C", str(work), "--numeric-owner", "-cf", "-", "."],
                               stdout=subprocess.PIPE)
        zstd = subprocess.run(["zstd", "-q", "-3", "-T0"], stdin=tar.stdout, stdout=out)
        tar.wait()
    if tar.returncode or zstd.returncode:
        tmp.unlink(missing_ok=True)
        raise FleetError("packing the base image failed: is zstd installed? (`make deps`)")
    tmp.rename(tarball)
    shutil.rmtree(work)
    log(f"base image {tarball.name} built in {time.monotonic() - started:.0f} s")


def write_stock_sources(root: Path, suite: str) -> None:
    """The apt sources a stock Debian 12/13 server has (deb822, as Debian's installer and
    images write them): main from the suite, its updates and security. debootstrap
    writes only `deb <its mirror> <suite> main` in sources.list."""
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    if not (root / keyring.lstrip("/")).exists():  # trixie's keyring may ship only .pgp
        keyring = keyring.replace(".gpg", ".pgp")
    with contextlib.suppress(FileNotFoundError):
        (root / "etc/apt/sources.list").unlink()
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite} {suite}-updates\n"
        f"Components: main\nSigned-By: {keyring}\n\n"
        f"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: {suite}-security\n"
        f"Components: main\nSigned-By: {keyring}\n"
    )


def base_root(suite: str) -> Path:
    """The unpacked base image for `suite`, built or unpacked from cache on first use."""
    if suite not in SUITES:
        raise FleetError(f"unknown Debian suite {suite!r}: use one of {', '.join(SUITES)}")
    key = image_key(suite)
    root = BASE_DIR / key
    if (root / "etc/os-release").exists():
        return root
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"base-{key}.tar.zst"
    if not tarball.exists():
        build_image(suite, tarball)
    tmp = BASE_DIR / f".unpack-{key}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    zstd = subprocess.Popen(["zstd", "-q", "-d", "-c", str(tarball)], stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-C", str(tmp), "--numeric-owner", "-xf", "-"], stdin=zstd.stdout)
    zstd.wait()
    if zstd.returncode or untar.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FleetError(f"unpacking {tarball} failed: delete it and run `make fleet-up` again")
    tmp.rename(root)
    return root
