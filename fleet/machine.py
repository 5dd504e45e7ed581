"""One host: a systemd-nspawn container booted under a supervisor, its sudo user, SSH to it,
and the wait until every host answers."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from pathlib import Path

from fleet.base import APT_PROXY_ADDRESS, APT_PROXY_PORT, CGROUP_ROOTS, FleetError, SSH_OPTIONS, log, run
from fleet.state import fleet_dir, supervisor_alive

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


def remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        remove_cgroup(child)
    with contextlib.suppress(OSError):
        path.rmdir()
