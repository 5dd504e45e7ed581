"""The local fleet: throwaway Debian hosts with systemd as PID 1 and OpenSSH.

Each host is a systemd-nspawn container booted from a shared, cached base image
(debootstrap) through its own overlay mount, in its own network namespace joined to
this machine by a veth pair with link-local addresses 169.254.I.1 (machine) and
169.254.I.2 (host). Root only.

A host is what a stock Debian 12/13 cloud server is (systemd, OpenSSH, python3, sudo,
the stock apt sources; no apt lists, so `apt-get update` comes first): whatever the
deploy needs it installs with apt. The hosts have no internet; they reach Debian's
archive through one apt-cacher-ng that the fleet runs on this machine, bound only to
169.254.254.1 (a link of its own, `djdapt0`), and named as their apt proxy. It is
shared by every fleet on the machine: started by the first `up`, stopped by the `down`
of the last fleet, which also restores fs.inotify.max_user_instances if `up` raised it
(a host takes a few inotify instances of root's; 128 runs out at ~18 hosts).

All state lives in one known place, STATE_DIR/<fleet>/state.json, so `down` from any
checkout removes a fleet started from another, `up` refuses to start a second copy of
a running fleet, and a stale fleet (its processes killed, its mounts, namespaces and
cgroups left behind) is recognised and cleared. The last `down` leaves nothing running
and nothing in /etc; what stays is the cache in CACHE_DIR: base image tarballs and the
proxy's downloaded packages (CACHE_DIR/apt), so later fleets start and install fast.

    python -m fleet.hosts up --name demo --hosts 3
    python -m fleet.hosts status --name demo
    python -m fleet.hosts down --name demo      # or --all
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
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


# --- base image -------------------------------------------------------------------


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


# --- state ------------------------------------------------------------------------


def fleet_dir(name: str) -> Path:
    return STATE_DIR / name


def load_state(name: str) -> dict | None:
    path = fleet_dir(name) / "state.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save_state(state: dict) -> None:
    path = fleet_dir(state["name"]) / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.rename(path)


def write_servers(state: dict) -> Path:
    """The fleet as a servers file (djdeploy/inventory.py's format), which the project's
    inventory reads for DJDEPLOY_FLEET=<name>: the deploy knows servers files only."""
    lines = ["# Written by the fleet tool (fleet/hosts.py) for this fleet's hosts.", "[ssh]", 'user = "root"',
             f"key = {json.dumps(state['key'])}",
             "# Fleet hosts get new host keys at every boot: nothing to pin. Real servers keep",
             "# pyinfra's default (accept-new).",
             'strict_host_key_checking = "off"', 'known_hosts_file = "/dev/null"']
    groups: dict[str, list] = {}
    for host in state["hosts"]:
        groups.setdefault(host["group"], []).append(host["address"])
    for group, addresses in groups.items():
        lines += ["", f"[{group}]", f"hosts = {json.dumps(addresses)}"]
    path = fleet_dir(state["name"]) / "servers.toml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(path)
    return path


def all_states() -> list[dict]:
    if not STATE_DIR.exists():
        return []
    states = []
    for path in sorted(STATE_DIR.glob("*/state.json")):
        with contextlib.suppress(ValueError):
            states.append(json.loads(path.read_text()))
    return states


def free_indices(count: int) -> list[int]:
    """Address indices no other fleet on this machine uses (nor any leftover veth)."""
    used = {h["index"] for state in all_states() for h in state["hosts"]}
    links = run("ip", "-o", "link", "show", check=False).stdout
    free = [i for i in range(1, 255)
            if i not in SKIPPED_INDICES and i not in used and f" djf{i}@" not in links]
    if len(free) < count:
        raise FleetError(f"only {len(free)} free host addresses left: `make fleet-down` unused fleets")
    return free[:count]


def supervisor_alive(host: dict) -> bool:
    pid_file = Path(host["dir"]) / "supervisor.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return host["machine"].encode() in cmdline and b"djdeploy-host" in cmdline


def group_for(position: int, count: int) -> str:
    """Two of three default hosts are `web`, the last is `staging` (a single host is web)."""
    return "staging" if count > 1 and position == count else "web"


def per_host(values: list[str], count: int) -> list[str]:
    """`values` given as "a,b,c", one per host: the last repeats for the hosts after it."""
    return [values[min(i, len(values) - 1)] for i in range(count)]


def host_groups(groups: str | None, count: int) -> list[str]:
    """Each host's inventory group: the default (`group_for`), or one per host
    ("db,web,web"; the last repeats)."""
    if not groups:
        return [group_for(position, count) for position in range(1, count + 1)]
    names = [part.strip() for part in groups.split(",") if part.strip()]
    for name_ in names:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name_):
            raise FleetError(f"group {name_!r}: use lower-case names such as web, db, staging")
    return per_host(names, count)


# --- one host ---------------------------------------------------------------------

SUPERVISOR = r"""
set -u
# Own cgroups: two nspawns started from one cgroup collide on payload/supervisor.
for root in {cgroup_roots}; do
  mkdir -p "$root/{cgroup}" && echo $$ > "$root/{cgroup}/cgroup.procs"
done
while :; do
  systemd-nspawn -b -D {root} --machine={machine} --register=no --keep-unit \
    --network-namespace-path=/run/netns/{netns} --console=pipe --resolv-conf=off \
    --timezone=off --link-journal=no </dev/null &
  echo $! > {dir}/nspawn.pid
  wait $!
  rc=$?
  # 133: the host rebooted itself (systemctl reboot); boot it again.
  [ "$rc" -eq 133 ] || exit "$rc"
  echo "fleet: {machine} rebooting"
done
"""


SUDO_USER = "deploy"  # what real servers often offer instead of root: a user with sudo


def add_sudo_user(root: Path, user: str, public_key: str) -> None:
    """`user` on the host: the fleet's key, passwordless sudo (for `pyinfra --sudo`)."""
    if not any(line.startswith(f"{user}:") for line in (root / "etc/passwd").read_text().splitlines()):
        run("useradd", "--root", str(root), "--create-home", "--user-group", "--shell", "/bin/bash", user)
    entry = next(line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith(f"{user}:"))
    uid, gid = int(entry.split(":")[2]), int(entry.split(":")[3])
    home = root / "home" / user
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    for path in (home, ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, uid, gid)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    sudoers = root / "etc/sudoers.d" / user
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    os.chmod(sudoers, 0o440)


def start_host(state: dict, host: dict, base: Path, public_key: str) -> None:
    hdir = Path(host["dir"])
    for sub in ("upper", "work", "root"):
        (hdir / sub).mkdir(parents=True, exist_ok=True)
    root = hdir / "root"
    if not os.path.ismount(root):
        run("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={base},upperdir={hdir / 'upper'},workdir={hdir / 'work'}", str(root))
    machine = host["machine"]
    (root / "etc/hostname").write_text(machine + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {machine}\n::1 localhost\n")
    (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
    run("ssh-keygen", "-A", "-f", str(root))
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    add_sudo_user(root, SUDO_USER, public_key)
    (root / "etc/apt/apt.conf.d/01djdeploy-proxy").write_text(
        "// No internet here: Debian's archive through the fleet's apt proxy (fleet.hosts).\n"
        f'Acquire::http::Proxy "http://{APT_PROXY_ADDRESS}:{APT_PROXY_PORT}";\n'
    )

    netns, veth, index = host["netns"], host["veth"], host["index"]
    if not Path(f"/run/netns/{netns}").exists():
        run("ip", "netns", "add", netns)
    if run("ip", "link", "show", veth, check=False).returncode != 0:
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "host0", "netns", netns)
        run("ip", "addr", "add", f"169.254.{index}.1/24", "dev", veth)
        run("ip", "link", "set", veth, "up")
        run("ip", "-n", netns, "addr", "add", f"169.254.{index}.2/24", "dev", "host0")
        run("ip", "-n", netns, "link", "set", "host0", "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")
    # Hosts reach each other (web hosts their db host) through this machine: a route in
    # the host, forwarding on this veth only (the machine's own ip_forward stays as is).
    Path(f"/proc/sys/net/ipv4/conf/{veth}/forwarding").write_text("1\n")
    if "169.254.0.0/16" not in run("ip", "-n", netns, "route", "show").stdout:
        run("ip", "-n", netns, "route", "add", "169.254.0.0/16", "via", f"169.254.{index}.1")

    script = SUPERVISOR.format(
        cgroup_roots=" ".join(str(r) for r in CGROUP_ROOTS), cgroup=host["cgroup"],
        dir=hdir, root=root, machine=machine, netns=netns,
    )
    with open(hdir / "console.log", "ab") as console:
        supervisor = subprocess.Popen(["bash", "-c", script, "djdeploy-host", machine],
                                      stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                      start_new_session=True, close_fds=True)
    (hdir / "supervisor.pid").write_text(f"{supervisor.pid}\n")
    deadline = time.monotonic() + 5  # its /proc cmdline reads empty for a moment after fork
    while not supervisor_alive(host) and supervisor.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def ssh(state: dict, host: dict, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", state["key"], *SSH_OPTIONS, f"root@{host['address']}", command],
        text=True, capture_output=True, timeout=timeout,
    )


def wait_ready(state: dict, timeout: float) -> None:
    """Wait until every host answers SSH and its systemd has finished booting."""
    deadline = time.monotonic() + timeout
    pending = list(state["hosts"])
    while pending:
        for host in list(pending):
            if not supervisor_alive(host):
                tail = (Path(host["dir"]) / "console.log").read_text(errors="replace")[-400:]
                raise FleetError(f"host {host['machine']} stopped while booting: {tail.strip()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = ssh(state, host, "systemctl is-system-running --wait", timeout=20)
                if result.returncode == 0 or result.stdout.strip() == "degraded":
                    if result.stdout.strip() == "degraded":
                        failed = ssh(state, host, "systemctl --failed --no-legend --plain").stdout
                        log(f"{host['machine']} is degraded: {failed.strip()}")
                    pending.remove(host)
        if pending and time.monotonic() > deadline:
            names = ", ".join(h["machine"] for h in pending)
            raise FleetError(f"{names} did not answer SSH within {timeout:.0f} s: see console.log "
                             f"under {fleet_dir(state['name'])}")
        if pending:
            time.sleep(0.3)


# --- shared by every fleet on the machine: the apt proxy, inotify headroom ---------

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
"""


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


# --- commands ---------------------------------------------------------------------


def host_suites(suite: str, count: int) -> list[str]:
    """Each host's Debian suite: "trixie", or one per host ("bookworm,bookworm,trixie"; the
    last repeats), for a fleet that mixes releases."""
    names = [part.strip() for part in suite.split(",") if part.strip()] or ["bookworm"]
    for name_ in names:
        if name_ not in SUITES:
            raise FleetError(f"unknown Debian suite {name_!r}: use one of {', '.join(SUITES)}")
    return per_host(names, count)


def up(name: str, count: int, suite: str, timeout: float, reuse: bool = False,
       groups: str | None = None) -> dict:
    with machine_lock():
        state = load_state(name)
        if state is not None:
            if any(supervisor_alive(h) for h in state["hosts"]):
                if reuse:
                    log(f"fleet {name!r} is already running ({len(state['hosts'])} hosts): using it")
                    ensure_proxy()  # its hosts' apt needs it, if something stopped it
                    write_servers(state)
                    return state
                raise FleetError(f"fleet {name!r} is already running ({len(state['hosts'])} hosts): "
                                 f"use it, or `make fleet-down FLEET={name}` first")
            log(f"clearing stale fleet {name!r} left by a stopped session")
            teardown(state)
        if count < 1:
            raise FleetError("HOSTS must be at least 1")
        started = time.monotonic()
        suites = host_suites(suite, count)
        host_group = host_groups(groups, count)
        bases = {name_: base_root(name_) for name_ in dict.fromkeys(suites)}
        fdir = fleet_dir(name)
        fdir.mkdir(parents=True, exist_ok=True)
        key = fdir / "id_ed25519"
        if not key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"fleet-{name}", "-f", str(key))
        state = {"name": name, "suite": suite, "key": str(key), "hosts": []}
        for position, index in enumerate(free_indices(count), start=1):
            machine = f"{name}-{position}"
            state["hosts"].append({
                "machine": machine, "index": index, "address": f"169.254.{index}.2",
                "group": host_group[position - 1], "netns": f"djd-{machine}",
                "veth": f"djf{index}", "cgroup": f"{CGROUP_PARENT}/{machine}",
                "dir": str(fdir / machine), "suite": suites[position - 1],
            })
        save_state(state)  # before any resource exists, so a crash here leaves something to clear
        NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(NSPAWN_RUN):
            run("mount", "-t", "tmpfs", "tmpfs", str(NSPAWN_RUN))
        public_key = (fdir / "id_ed25519.pub").read_text()
        try:
            ensure_inotify_headroom(count)
            ensure_proxy()
            for host in state["hosts"]:
                start_host(state, host, bases[host["suite"]], public_key)
            wait_ready(state, timeout)
            write_servers(state)
        except FleetError:
            teardown(state)
            raise
        log(f"fleet {name!r}: {count} host(s) up in {time.monotonic() - started:.1f} s")
        return state


def stop_host(host: dict) -> None:
    hdir = Path(host["dir"])
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((hdir / "nspawn.pid").read_text()), signal.SIGTERM)  # clean poweroff
    deadline = time.monotonic() + 20
    while supervisor_alive(host) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_host(host)  # whatever is left (a hung guest, or processes of a stale fleet)


def kill_host(host: dict) -> None:
    """Every process of the host killed at once, as if its power went: no shutdown."""
    for _ in range(50):
        pids = []
        for croot in CGROUP_ROOTS:
            for procs in (croot / host["cgroup"]).glob("**/cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids += [int(p) for p in procs.read_text().split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def numbered(state: dict, number: int) -> dict:
    """Host `number` of a fleet, counted from 1 as `up` names them (<fleet>-<number>)."""
    if not 1 <= number <= len(state["hosts"]):
        raise FleetError(f"fleet {state['name']!r} has hosts 1 to {len(state['hosts'])}, not {number}")
    return state["hosts"][number - 1]


def poweroff(name: str, number: int) -> None:
    """Host `number` loses its power: its processes killed at once (no shutdown, what it had
    not written to disk is lost), and its link down, so whoever asks it waits in vain, as
    for a machine that is off (not a refused connection). Its disk stays for `poweron`."""
    with machine_lock():
        state = _loaded(name)
        host = numbered(state, number)
        run("ip", "link", "set", host["veth"], "down")
        kill_host(host)
        log(f"{host['machine']} ({host['address']}) powered off")


def poweron(name: str, number: int, timeout: float = 120) -> None:
    """Host `number`, powered off, boots again from its own disk, at the same address."""
    with machine_lock():
        state = _loaded(name)
        host = numbered(state, number)
        if supervisor_alive(host):
            raise FleetError(f"{host['machine']} is running: `poweroff` it first")
        started = time.monotonic()
        kill_host(host)  # whatever a poweroff left behind
        run("ip", "link", "set", host["veth"], "up")
        start_host(state, host, base_root(host["suite"]), (fleet_dir(name) / "id_ed25519.pub").read_text())
        wait_ready({**state, "hosts": [host]}, timeout)
        log(f"{host['machine']} ({host['address']}) powered on in {time.monotonic() - started:.1f} s")


def replace(name: str, number: int, timeout: float = 120) -> None:
    """Host `number` destroyed and a fresh stock one booted in its place: same name, address
    and group, an empty disk (the suite's image), new host keys."""
    with machine_lock():
        state = _loaded(name)
        host = numbered(state, number)
        started = time.monotonic()
        stop_host(host)
        run("ip", "link", "set", host["veth"], "up")
        hdir = Path(host["dir"])
        root = hdir / "root"
        if os.path.ismount(root):
            run("umount", str(root), check=False)
        for sub in ("upper", "work"):
            shutil.rmtree(hdir / sub, ignore_errors=True)
        start_host(state, host, base_root(host["suite"]), (fleet_dir(name) / "id_ed25519.pub").read_text())
        wait_ready({**state, "hosts": [host]}, timeout)
        log(f"{host['machine']} ({host['address']}) replaced by a fresh host in {time.monotonic() - started:.1f} s")


def _loaded(name: str) -> dict:
    state = load_state(name)
    if state is None:
        raise FleetError(f"no fleet {name!r} on this machine: `make fleet-up FLEET={name}` first")
    return state


def remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        remove_cgroup(child)
    with contextlib.suppress(OSError):
        path.rmdir()


def teardown(state: dict) -> None:
    for host in state["hosts"]:
        stop_host(host)
    for host in state["hosts"]:
        root = Path(host["dir"]) / "root"
        if os.path.ismount(root):
            run("umount", str(root), check=False)
            if os.path.ismount(root):
                run("umount", "-l", str(root), check=False)
        if Path(f"/run/netns/{host['netns']}").exists():
            run("ip", "netns", "del", host["netns"], check=False)
        run("ip", "link", "del", host["veth"], check=False)
        for croot in CGROUP_ROOTS:
            remove_cgroup(croot / host["cgroup"])
    shutil.rmtree(fleet_dir(state["name"]), ignore_errors=True)
    release_shared()


def down(names: list[str]) -> None:
    with machine_lock():
        for name in names:
            state = load_state(name)
            if state is None:
                log(f"no fleet {name!r} on this machine: nothing to remove")
                continue
            started = time.monotonic()
            teardown(state)
            log(f"fleet {name!r} removed in {time.monotonic() - started:.1f} s")
        release_shared()  # also what a crash left with no fleet to tear down


def status(name: str) -> int:
    state = load_state(name)
    if state is None:
        print(f"no fleet {name!r} on this machine")
        return 1
    for host in state["hosts"]:
        alive = "running" if supervisor_alive(host) else "stopped (powered off, or stale: `make fleet-down`)"
        print(f"{host['machine']:12} {host['address']:16} {host['group']:8} {alive}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.hosts", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="boot a fleet and wait until every host answers SSH")
    p_up.add_argument("--name", default="demo")
    p_up.add_argument("--hosts", type=int, default=3)
    p_up.add_argument("--suite", default="bookworm", help="Debian suite: bookworm (12) or trixie (13), or one per host: bookworm,trixie")
    p_up.add_argument("--groups", default=None,
                      help="inventory group per host, e.g. db,web,web (default: web..., staging last)")
    p_up.add_argument("--timeout", type=float, default=120)
    p_up.add_argument("--reuse", action="store_true", help="a running fleet of that name is fine")
    p_down = sub.add_parser("down", help="remove a fleet: processes, mounts, namespaces, cgroups")
    p_down.add_argument("--name", default="demo")
    p_down.add_argument("--all", action="store_true", help="every fleet on this machine")
    p_down.add_argument("--stale", action="store_true",
                        help="every fleet whose processes are gone (left by a stopped session)")
    p_status = sub.add_parser("status", help="list a fleet's hosts")
    p_status.add_argument("--name", default="demo")
    for verb, said in (("poweroff", "cut a host's power: its processes killed, its link down, its disk kept"),
                       ("poweron", "boot a powered-off host again from its own disk"),
                       ("replace", "destroy a host and boot a fresh stock one in its place (same name and address)")):
        p_verb = sub.add_parser(verb, help=said)
        p_verb.add_argument("--name", default="demo")
        p_verb.add_argument("--host", type=int, required=True, help="its number, from 1, as `up` names it")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("fleet: must run as root (it mounts, boots containers and makes network namespaces)",
              file=sys.stderr)
        return 1
    try:
        if args.command == "up":
            up(args.name, args.hosts, args.suite, args.timeout, args.reuse, args.groups)
        elif args.command == "down" and args.all:
            down([state["name"] for state in all_states()])
        elif args.command == "down" and args.stale:
            down([state["name"] for state in all_states()
                  if not any(supervisor_alive(h) for h in state["hosts"])])
        elif args.command == "down":
            down([args.name])
        elif args.command in ("poweroff", "poweron", "replace"):
            {"poweroff": poweroff, "poweron": poweron, "replace": replace}[args.command](args.name, args.host)
        else:
            return status(args.name)
    except FleetError as error:
        log(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
