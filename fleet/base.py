"""The fleet tool's ground: where its state and caches live, the apt proxy's and the hosts'
addresses, its error, its log line, its command runner and the machine-wide lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from pathlib import Path


STATE_DIR = Path(os.environ.get("DJDEPLOY_FLEET_DIR", "/var/lib/djdeploy/fleets"))
BASE_DIR = Path(os.environ.get("DJDEPLOY_BASE_DIR", "/var/lib/djdeploy/base"))
CACHE_DIR = Path(os.environ.get("DJDEPLOY_CACHE_DIR", "/var/cache/djdeploy"))
NSPAWN_RUN = Path("/run/systemd/nspawn")
CGROUP_ROOTS = [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]
CGROUP_PARENT = "djdeploy"

SUITES = {"bookworm": "12", "trixie": "13"}
# What a stock Debian cloud server has, and nothing only the deploy needs (it installs
# that through the apt proxy, as on a real server).
BASE_PACKAGES = [
    "systemd", "systemd-sysv", "openssh-server", "python3", "sudo", "dbus", "iproute2",
    "ca-certificates",
]
# Units that only add noise on a throwaway host.
MASKED_UNITS = [
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
    "e2scrub_all.timer", "fstrim.timer", "getty@tty1.service", "console-getty.service",
    "systemd-networkd-wait-online.service",
]
# Bump when the image recipe below changes: it is part of the cache key.
IMAGE_RECIPE_VERSION = "2"
# Host address indices never used: 169.254.169.254 is the usual cloud metadata address,
# 169.254.254.1 the apt proxy's.
SKIPPED_INDICES = {169, 254}
# The apt proxy (apt-cacher-ng) the hosts use: its address on a link of its own, its
# config, pid and logs (removed by the last `down`), its package cache (kept).
APT_PROXY_ADDRESS = "169.254.254.1"
APT_PROXY_PORT = 3142
APT_PROXY_LINK = "djdapt0"
APT_PROXY_DIR = STATE_DIR / ".apt-proxy"
APT_PROXY_CACHE = CACHE_DIR / "apt"
APT_PROXY_USER = "apt-cacher-ng"  # Debian's package makes it; its own service runs as it
# inotify: root's instances are capped machine-wide (fs.inotify.max_user_instances, 128
# by default) and every host's systemd (and logind on trixie) holds some of root's.
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_SAVED = STATE_DIR / ".inotify-max-user-instances"  # the value before `up` raised it
# Measured: an idle host holds 5 (bookworm) or 6 (trixie); 3 hosts peaked at 17 booting.
INOTIFY_PER_HOST = 7
INOTIFY_SPARE = 32  # for this machine's own processes and the deploy's
SSH_OPTIONS = [
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3",
]


class FleetError(Exception):
    """A problem the user can act on: printed as one line, exit code 1."""


def log(message: str) -> None:
    print(f"fleet: {message}", file=sys.stderr, flush=True)


def run(*argv: str, check: bool = True, quiet: bool = False, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, text=True, capture_output=True, **kwargs)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        raise FleetError(f"`{' '.join(argv[:4])}...` failed ({result.returncode}): {detail[0]}")
    return result


@contextlib.contextmanager
def machine_lock():
    """Serialise fleet changes on this machine (two `up`s must not race for addresses)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
