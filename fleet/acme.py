"""A local ACME CA for the fleet: Let's Encrypt's test server, Pebble, on the fleet's side.

The fleet hosts have no internet, so Caddy (or any ACME client) on them cannot reach
Let's Encrypt. Pebble (Debian's `pebble`, 2.4.0) is the ACME server Let's Encrypt made for
testing clients: it issues real certificates after real challenges, from a root it makes
at start and forgets at exit. Run here, it lets a deploy exercise automatic HTTPS end to
end, renewals included (`validity` makes certificates short-lived).

Where: 169.254.254.1, the address the hosts already reach for the apt proxy (fleet.hosts,
link `djdapt0`, made here if no fleet has made it), ACME on 14000 and management on 15000;
nothing else listens. Pebble validates HTTP-01 on the hosts' port 80 and TLS-ALPN-01 on
443, as Let's Encrypt does.

Names: the caller says which name is which host (web1.fleet.test=169.254.1.2). Pebble
resolves them with Go's resolver, which reads /etc/hosts first (nsswitch: files dns), so
it runs in a mount namespace of its own where a hosts file of ours is bind-mounted on
/etc/hosts: the machine's /etc/hosts is never touched, and nothing is left once pebble
exits.

Trust: two roots. Pebble's HTTPS listeners need a certificate of their own; Debian's
package ships none (upstream's test/certs are not installed), so `start` makes a small CA
with openssl (`ca_root_file`): ACME clients on the hosts must trust it to talk to the
directory (Caddy: `acme_ca_root`). The certificates pebble issues chain to another root,
made fresh at each start and served by the management port (`issuing_roots()`): what a
test trusts to check a host's HTTPS.

Everything lives in STATE_DIR/.acme (config, hosts file, CA, pid, log), removed by
`stop`; a pebble killed with its session is recognised by its pid file and cleared by
the next `start`. One pebble per machine (its ports are fixed), shared by the fleets.

    python -m fleet.acme up --name web1.fleet.test=169.254.1.2 [--validity 180]
    python -m fleet.acme down
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from fleet.base import APT_PROXY_ADDRESS, APT_PROXY_LINK, STATE_DIR, FleetError, log, machine_lock, run
from fleet.shared import proxy_alive
from fleet.state import all_states

ACME_ADDRESS = APT_PROXY_ADDRESS
ACME_PORT = 14000
MANAGEMENT_PORT = 15000
ACME_DIR = STATE_DIR / ".acme"  # not STATE_DIR/<x>/state.json: that would be a fleet
CA_DAYS = 30  # the listener CA's lifetime: a pebble runs for a test session, not a month
# Pebble 2.4.0's knobs (va/va.go, wfe/wfe.go): validate at once instead of sleeping up to
# 5 s per attempt, reject no valid nonce (5 % by default, to exercise client retries), and
# never reuse a valid authorization (50 % by default): every order, renewals included,
# runs its challenges against the host, the same way each time.
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
NAME_PATTERN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]")
# Pebble in a mount namespace of its own, our hosts file on its /etc/hosts. The execs
# leave pebble itself at the pid Popen reports.
LAUNCHER = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'


@dataclass
class Acme:
    """A running pebble, as `start` left it."""

    names: dict[str, str]
    pid: int
    directory: str = f"https://{ACME_ADDRESS}:{ACME_PORT}/dir"
    management: str = f"https://{ACME_ADDRESS}:{MANAGEMENT_PORT}"
    ca_root_file: Path = field(default=ACME_DIR / "listener-ca.pem")

    def issuing_roots(self) -> str:
        """PEM of the root that signs the certificates pebble issues (new at each start)."""
        return management_get("/roots/0")

    def intermediates(self) -> str:
        """PEM of the intermediate between that root and the leaves (clients get it in
        the chain pebble serves with each certificate)."""
        return management_get("/intermediates/0")

    def stop(self) -> None:
        stop()


# --- state ------------------------------------------------------------------------


def pebble_pid() -> int | None:
    """The pid of the pebble `start` ran, if it still runs (not a reused pid)."""
    try:
        pid = int((ACME_DIR / "pebble.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    config = str(ACME_DIR / "pebble.json").encode()
    return pid if b"pebble" in cmdline and config in cmdline else None


def answers(port: int) -> bool:
    """Whether pebble answers TLS on `port` with the listener certificate (a full
    handshake: a bare connect would only add handshake errors to its log)."""
    context = ssl.create_default_context(cafile=str(ACME_DIR / "listener-ca.pem"))
    with contextlib.suppress(OSError), socket.create_connection((ACME_ADDRESS, port), timeout=0.5) as sock, \
            context.wrap_socket(sock, server_hostname=ACME_ADDRESS):
        return True
    return False


def management_get(path: str) -> str:
    """GET from pebble's management port, trusting the listener CA only (no proxy)."""
    context = ssl.create_default_context(cafile=str(ACME_DIR / "listener-ca.pem"))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                          urllib.request.HTTPSHandler(context=context))
    url = f"https://{ACME_ADDRESS}:{MANAGEMENT_PORT}{path}"
    try:
        with opener.open(url, timeout=5) as response:
            return response.read().decode()
    except OSError as error:
        raise FleetError(f"pebble's management port did not answer {url}: {error}") from None


# --- pieces -----------------------------------------------------------------------


def check_names(names: dict[str, str]) -> dict[str, str]:
    """Names as pebble will look them up, each to one IPv4 address on the fleet's side."""
    if not names:
        raise FleetError("give pebble at least one name to resolve, e.g. web1.fleet.test=169.254.1.2")
    checked = {}
    for name, address in names.items():
        name = name.lower().rstrip(".")
        if not NAME_PATTERN.fullmatch(name):
            raise FleetError(f"{name!r} is no DNS name pebble can issue for (e.g. web1.fleet.test)")
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            raise FleetError(f"{name}: {address!r} is no IPv4 address") from None
        if ip not in ipaddress.IPv4Network("169.254.0.0/16"):
            raise FleetError(f"{name}: {address} is not a fleet address (169.254.0.0/16)")
        checked[name] = str(ip)
    return checked


def hosts_file(names: dict[str, str]) -> str:
    lines = ["# pebble's /etc/hosts (fleet.acme): the names it validates, nothing else.",
             "127.0.0.1 localhost", "::1 localhost"]
    return "\n".join(lines + [f"{address} {name}" for name, address in names.items()]) + "\n"


def make_listener_ca(directory: Path) -> None:
    """A CA and a certificate for pebble's HTTPS listeners (169.254.254.1, loopback)."""
    ca_key, ca_pem = directory / "listener-ca.key", directory / "listener-ca.pem"
    key, csr, cert = directory / "listener.key", directory / "listener.csr", directory / "listener.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_pem),
        "-days", str(CA_DAYS), "-subj", "/CN=djdeploy fleet ACME listener CA",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=pebble")
    extensions = directory / "listener.ext"
    extensions.write_text(
        f"subjectAltName=IP:{ACME_ADDRESS},IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", str(CA_DAYS), "-extfile", str(extensions), "-out", str(cert))
    for path in (ca_key, csr, extensions, directory / "listener-ca.srl"):
        path.unlink(missing_ok=True)  # nothing can sign another listener certificate


def pebble_config(validity: int | None, http_port: int, tls_port: int) -> dict:
    config = {
        "listenAddress": f"{ACME_ADDRESS}:{ACME_PORT}",
        "managementListenAddress": f"{ACME_ADDRESS}:{MANAGEMENT_PORT}",
        "certificate": str(ACME_DIR / "listener.pem"),
        "privateKey": str(ACME_DIR / "listener.key"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }
    if validity is not None:
        # Seconds, from notBefore (pebble 2.4.0 ca/ca.go; the default is 5 years).
        config["certificateValidityPeriod"] = validity
    return {"pebble": config}


def ensure_link() -> None:
    """169.254.254.1 on its own link, as fleet.hosts makes it for the apt proxy."""
    if run("ip", "link", "show", APT_PROXY_LINK, check=False).returncode == 0:
        return
    run("ip", "link", "add", APT_PROXY_LINK, "type", "bridge")
    run("ip", "addr", "add", f"{ACME_ADDRESS}/32", "dev", APT_PROXY_LINK)
    run("ip", "link", "set", APT_PROXY_LINK, "up")


def release_link() -> None:
    """The link goes when nothing else needs it: no apt proxy, no fleet (whose `down`
    removes it anyway)."""
    if proxy_alive() or all_states():
        return
    if run("ip", "link", "show", APT_PROXY_LINK, check=False).returncode == 0:
        run("ip", "link", "del", APT_PROXY_LINK, check=False)


def wait_listening(process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (answers(ACME_PORT) and answers(MANAGEMENT_PORT)):
        if process.poll() is not None or time.monotonic() > deadline:
            text = (ACME_DIR / "pebble.log").read_text(errors="replace")
            tail = " ".join(text.split())[-300:]
            stop_locked()
            raise FleetError(f"pebble did not start on {ACME_ADDRESS}:{ACME_PORT}/{MANAGEMENT_PORT}: "
                             f"{tail or 'no output'}")
        time.sleep(0.05)


# --- commands ---------------------------------------------------------------------


def start(names: dict[str, str], validity: int | None = None, http_port: int = 80,
          tls_port: int = 443, timeout: float = 10) -> Acme:
    """Run pebble for `names` (name -> host address). `validity`: issued certificates'
    lifetime in seconds (default pebble's 5 years); short ones make clients renew soon."""
    names = check_names(names)
    binary = shutil.which("pebble")
    if binary is None:
        raise FleetError("pebble is not installed: run `make deps` (apt-get install pebble)")
    if shutil.which("unshare") is None or shutil.which("openssl") is None:
        raise FleetError("pebble needs unshare (util-linux) and openssl on this machine")
    with machine_lock():
        if pebble_pid() is not None:
            raise FleetError("pebble is already running (fleet.acme): `python -m fleet.acme down` first")
        if ACME_DIR.exists():
            log("clearing a stale pebble left by a stopped session")
        stop_locked()  # a killed session leaves files (and the link) behind
        ACME_DIR.mkdir(parents=True)
        ensure_link()
        make_listener_ca(ACME_DIR)
        (ACME_DIR / "hosts").write_text(hosts_file(names))
        config = ACME_DIR / "pebble.json"
        config.write_text(json.dumps(pebble_config(validity, http_port, tls_port), indent=2) + "\n")
        (ACME_DIR / "names.json").write_text(json.dumps(names, indent=2) + "\n")
        with open(ACME_DIR / "pebble.log", "ab") as out:
            process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", LAUNCHER, "pebble-launcher",
                 str(ACME_DIR / "hosts"), binary, "-config", str(config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                env={**os.environ, **PEBBLE_ENV})
        (ACME_DIR / "pebble.pid").write_text(f"{process.pid}\n")
        wait_listening(process, timeout)
        return Acme(names=names, pid=process.pid)


def stop_locked() -> None:
    pid = pebble_pid()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pebble_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if pebble_pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10  # gone (its ports closed) before this returns
            while pebble_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
    shutil.rmtree(ACME_DIR, ignore_errors=True)
    release_link()


def stop() -> None:
    """Stop pebble (a running or a stale one) and remove its files."""
    with machine_lock():
        stop_locked()


# --- command line -----------------------------------------------------------------


def parse_name(text: str) -> tuple[str, str]:
    name, sep, address = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=ADDRESS, e.g. web1.fleet.test=169.254.1.2")
    return name, address


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.acme", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start pebble for the given names")
    p_up.add_argument("--name", dest="names", type=parse_name, action="append", required=True,
                      metavar="NAME=ADDRESS", help="a name pebble resolves, e.g. web1.fleet.test=169.254.1.2")
    p_up.add_argument("--validity", type=int, default=None,
                      help="issued certificates' lifetime in seconds (default 5 years)")
    sub.add_parser("down", help="stop pebble and remove its files")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("fleet: must run as root (pebble gets a mount namespace and a link)", file=sys.stderr)
        return 1
    try:
        if args.command == "up":
            acme = start(dict(args.names), validity=args.validity)
            roots = ACME_DIR / "issuing-roots.pem"
            roots.write_text(acme.issuing_roots())
            print(f"directory      {acme.directory}\nca_root_file   {acme.ca_root_file}\n"
                  f"issuing roots  {roots}")
        else:
            stop()
    except FleetError as error:
        log(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
