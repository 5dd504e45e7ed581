"""What every fleet on the machine shares: the apt proxy (apt-cacher-ng on its own link)
and the inotify headroom hosts need; the last fleet's `down` releases both."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from fleet.base import (APT_PROXY_ADDRESS, APT_PROXY_CACHE, APT_PROXY_DIR, APT_PROXY_LINK, APT_PROXY_PORT,
                        APT_PROXY_USER, CGROUP_PARENT, CGROUP_ROOTS, FleetError, INOTIFY_LIMIT,
                        INOTIFY_PER_HOST, INOTIFY_SAVED, INOTIFY_SPARE, NSPAWN_RUN, log, run)
from fleet.machine import remove_cgroup
from fleet.state import all_states

APT_PROXY_CONF = """\
# The fleet's apt proxy (fleet.hosts): the hosts reach Debian's archive through it.
# Only on the fleet's side of this machine: 169.254.254.1 is on a link of its own.
BindAddress: {address}
Port: {port}
CacheDir: {cache}
LogDir: {dir}
PidFile: {dir}/acng.pid
SocketPath: {dir}/socket
SupportDir: /usr/lib/apt-cacher-ng
ForeGround: 1
ExThreshold: 4
# A suite's index (InRelease) is never checked again with Debian while the proxy runs:
# when several hosts ask for one as apt-cacher-ng fetches or refreshes it, it can fail to
# move the old copy aside ("File exists") and leave a request unanswered (apt-get update
# hung until the deploy cut it, 180 s; seen with the index fetched 20 s earlier). The
# proxy fetches each one itself as it starts, one at a time (warm_indexes), after the
# last proxy's copies are deleted: each proxy's life sees the archive as it was then.
SPfilePatternEx: .*/dists/[^/]+/InRelease$
FreshIndexMaxAge: 3600
"""

# The index files every host's `apt-get update` asks first (fleet.image writes their
# sources): fetched through the proxy as it starts, one after another.
WARM_INDEXES = [f"http://deb.debian.org/{archive}/dists/{suite}{part}/InRelease"
                for suite in ("bookworm", "trixie")
                for archive, part in (("debian", ""), ("debian", "-updates"), ("debian-security", "-security"))]


def proxy_alive() -> bool:
    try:
        pid = int((APT_PROXY_DIR / "proxy.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"apt-cacher-ng" in cmdline and str(APT_PROXY_DIR).encode() in cmdline


def proxy_answers() -> bool:
    with contextlib.suppress(OSError), \
            socket.create_connection((APT_PROXY_ADDRESS, APT_PROXY_PORT), timeout=0.5):
        return True
    return False


def ensure_proxy() -> None:
    """The fleets' apt proxy, running: started if not (a stale one cleared first)."""
    if proxy_alive():
        return
    stop_proxy()  # a stopped session kills the process but leaves its link and files
    binary = shutil.which("apt-cacher-ng", path="/usr/sbin:/usr/bin")
    try:
        user = pwd.getpwnam(APT_PROXY_USER)
    except KeyError:
        user = None
    if binary is None or user is None:
        raise FleetError("apt-cacher-ng is not installed: run `make deps` (the hosts' apt proxy)")
    # A bridge without ports, not a dummy link: the dummy module is absent on this machine
    # kind. The hosts reach it through their route 169.254.0.0/16 via 169.254.I.1.
    run("ip", "link", "add", APT_PROXY_LINK, "type", "bridge")
    run("ip", "addr", "add", f"{APT_PROXY_ADDRESS}/32", "dev", APT_PROXY_LINK)
    run("ip", "link", "set", APT_PROXY_LINK, "up")
    APT_PROXY_DIR.mkdir(parents=True)
    APT_PROXY_CACHE.mkdir(parents=True, exist_ok=True)
    for old in APT_PROXY_CACHE.glob("*/*/dists/*/InRelease*"):  # fetched again below (APT_PROXY_CONF)
        old.unlink(missing_ok=True)
    (APT_PROXY_DIR / "acng.conf").write_text(APT_PROXY_CONF.format(
        address=APT_PROXY_ADDRESS, port=APT_PROXY_PORT, cache=APT_PROXY_CACHE, dir=APT_PROXY_DIR))
    for path in (APT_PROXY_DIR, APT_PROXY_CACHE):
        os.chown(path, user.pw_uid, user.pw_gid)
    with open(APT_PROXY_DIR / "proxy.log", "ab") as out:
        # As Debian's own service runs it: its own user, in the foreground.
        proxy = subprocess.Popen(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
             binary, "-c", str(APT_PROXY_DIR)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    (APT_PROXY_DIR / "proxy.pid").write_text(f"{proxy.pid}\n")
    deadline = time.monotonic() + 10
    while not proxy_answers():
        if proxy.poll() is not None or time.monotonic() > deadline:
            logs = [APT_PROXY_DIR / "proxy.log", APT_PROXY_DIR / "apt-cacher.err"]
            text = " ".join(p.read_text(errors="replace") for p in logs if p.exists())
            tail = " ".join(text.split())[-300:]  # one line
            stop_proxy()
            raise FleetError(f"the apt proxy (apt-cacher-ng) did not start on "
                             f"{APT_PROXY_ADDRESS}:{APT_PROXY_PORT}: {tail or 'no output'}")
        time.sleep(0.05)
    warm_indexes()


def warm_indexes() -> None:
    """Fetch WARM_INDEXES through the proxy, one at a time (see APT_PROXY_CONF). One that
    fails is left to the hosts: apt tells them."""
    proxy = f"http://{APT_PROXY_ADDRESS}:{APT_PROXY_PORT}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    started = time.monotonic()
    for url in WARM_INDEXES:
        with contextlib.suppress(OSError):
            with opener.open(url, timeout=30) as answer:
                answer.read()
    log(f"apt proxy: {len(WARM_INDEXES)} index files fetched in {time.monotonic() - started:.1f} s")


def stop_proxy() -> None:
    """Stop the apt proxy and remove its link and files (not its package cache)."""
    if proxy_alive():
        pid = int((APT_PROXY_DIR / "proxy.pid").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while proxy_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if proxy_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if run("ip", "link", "show", APT_PROXY_LINK, check=False).returncode == 0:
        run("ip", "link", "del", APT_PROXY_LINK, check=False)
    shutil.rmtree(APT_PROXY_DIR, ignore_errors=True)


def root_inotify_instances() -> int:
    """inotify instances held by root's processes (fds of uid-0 processes linking to
    anon_inode:inotify). An instance shared by two processes counts twice: an overcount,
    on the safe side."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != 0:  # /proc/PID belongs to the process's effective uid
                continue
            fds = list((proc / "fd").iterdir())
        except OSError:  # the process has gone
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                count += os.readlink(fd) == "anon_inode:inotify"
    return count


def inotify_limit_for(in_use: int, limit: int, hosts: int, per_host: int, spare: int) -> int | None:
    """The fs.inotify.max_user_instances that booting `hosts` more hosts needs, when root
    has `in_use` instances under `limit`; None when `limit` leaves room enough."""
    needed = in_use + hosts * per_host + spare
    return needed if needed > limit else None


def ensure_inotify_headroom(hosts: int) -> None:
    """Raise root's inotify instance limit if `hosts` more hosts would exhaust it (a host
    that finds none left fails to boot with an unclear message). The original value is
    kept in STATE_DIR and restored by the last fleet's `down`."""
    limit = int(INOTIFY_LIMIT.read_text())
    in_use = root_inotify_instances()
    raised = inotify_limit_for(in_use, limit, hosts, INOTIFY_PER_HOST, INOTIFY_SPARE)
    if raised is None:
        return
    if not INOTIFY_SAVED.exists():  # a second fleet raising it again keeps the first original
        INOTIFY_SAVED.write_text(f"{limit}\n")
    INOTIFY_LIMIT.write_text(f"{raised}\n")
    log(f"raised fs.inotify.max_user_instances {limit} -> {raised} for the fleets' lifetime "
        f"(root uses {in_use}, {hosts} host(s) need ~{INOTIFY_PER_HOST} each)")


def restore_inotify() -> None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        original = int(INOTIFY_SAVED.read_text())
        INOTIFY_LIMIT.write_text(f"{original}\n")
    INOTIFY_SAVED.unlink(missing_ok=True)


def release_shared() -> None:
    """Once no fleet is left on the machine: what the fleets shared goes too."""
    if all_states():
        return
    for croot in CGROUP_ROOTS:
        remove_cgroup(croot / CGROUP_PARENT)
    if os.path.ismount(NSPAWN_RUN):
        run("umount", str(NSPAWN_RUN), check=False)
    stop_proxy()
    restore_inotify()
