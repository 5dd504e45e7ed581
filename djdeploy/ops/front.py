"""The front door: Caddy, from Debian, in front of every app host.

It answers the world on the site's ports (80, and 443 with a domain), ends TLS with a
certificate it gets from an ACME CA and renews (or the user's own files), speaks HTTP/2,
holds slow clients on cheap goroutines instead of gunicorn workers, serves static files
and uploads, and passes the rest to gunicorn on 127.0.0.1, trying again through the app's
restarts. One Caddyfile per host (global options, from the host's data) imports one site
file per project.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pyinfra import host
from pyinfra.facts.files import Sha1File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.api import StringCommand, operation
from pyinfra.operations import files as pyinfra_files
from pyinfra.operations.util import any_changed

from djdeploy.ops import uploads
from djdeploy.ops.facts import FrontApplied, NamedAcl
from djdeploy.shell import shell_quote

PACKAGE = "caddy"
PACKAGES = [PACKAGE, "acl"]  # acl: setfacl, so the front alone may pass through a project folder
UNIT = "caddy.service"
USER = "caddy"  # Debian's package makes it


@operation()
def passage(path: str):
    """The front (its user) may pass through folder `path`, and only it: the project folder
    (to the release's static files) stays 0750 root:<app group>, so other local users reach
    neither releases (code, venvs) nor shared/; the socket folder (to the app's socket) is
    the app user's. An ACL entry, `user:caddy:--x`.

    + path: the folder
    """
    entries = host.get_fact(NamedAcl, path=path)
    wanted = f"user:{USER}:--x"
    if entries != [wanted]:  # none yet, or others added by hand: exactly the front's
        yield f"setfacl -b -m u:{USER}:x -- {shell_quote(path)}"


@operation()
def ca_root(s):
    """With acme_ca_root: the PEM that signs the ACME CA's own HTTPS, where Caddy reads it.

    + s: the host's AppSettings
    """
    if s.acme_ca_root:
        yield from _certs_folder(s)
        yield from uploads.upload._inner(src=s.acme_ca_root, dest=s.acme_root_file, group=USER, mode="0640")
    else:  # none (any more): nothing of it stays
        yield from pyinfra_files.file._inner(path=s.acme_root_file, present=False)


@operation()
def certificate(s):
    """With tls = {certificate, key}: the certificate (root:caddy 0640) and its key, which
    only the front may read, never printed or diffed (compared by digest, sent over stdin).
    The certificate folder is the front's alone (root:caddy 0750).

    + s: the host's AppSettings
    """
    if s.tls != "files":  # none (any more): the key and certificate go
        for path in (s.key_file, s.certificate_file):
            yield from pyinfra_files.file._inner(path=path, present=False)
        return
    yield from _certs_folder(s)
    yield from uploads.upload._inner(src=s.tls_files[0], dest=s.certificate_file, group=USER, mode="0640")
    yield from key_file._inner(src=s.tls_files[1], dest=s.key_file)


def _certs_folder(s):
    """The front's certificates and keys: root:caddy 0750, the front's alone."""
    yield from pyinfra_files.directory._inner(path=f"{s.front_dir}/certs", user="root", group=USER, mode="0750")


@operation()
def key_file(src: str, dest: str):
    """The certificate's private key at `dest`, root:caddy 0640: readable by the front only
    (never by an app user), never printed or diffed: compared by digest, sent over stdin.

    + src: the key's PEM file on this machine
    + dest: where Caddy reads it
    """
    text = Path(src).read_text()
    text = text if text.endswith("\n") else text + "\n"  # as it arrives: pyinfra ends stdin with one
    digest = hashlib.sha1(text.encode()).hexdigest()
    present = host.get_fact(Sha1File, path=dest)
    if present == digest:
        return
    # Written 0600 from the start (umask), then checked and put in place as every upload is.
    yield StringCommand(f"umask 077 && cat > {shell_quote(dest + '.part')}", _stdin=[text])
    yield uploads.arrived_whole(dest, digest, "root", USER, "0640", shown="the certificate key")


@operation()
def front_door(s, restart: bool = False, reload: bool = False):
    """Caddy runs the deploy's configuration, enabled at boot; after Caddy has checked it,
    a changed configuration is reloaded gracefully (open connections finish on the old
    one), a changed unit (the drop-in) restarts it. A configuration Caddy refuses is one
    line, and the running one stays; a start that fails is one line with Caddy's reason
    and what holds the site's ports.

    + s: the host's AppSettings
    + restart: its unit changed: systemd reloads it and Caddy restarts
    + reload: its configuration changed: Caddy reloads it
    """
    if restart:
        yield take(s, "restart")
        return
    if reload:
        yield take(s, "reload")
        return
    if not running():
        yield take(s, "start")
    elif untaken(s):
        # The files in place are not what Caddy last took (a run whose reload was refused,
        # or that stopped before it): taken now, by a restart, as the unit (its admin
        # socket, say) may be among them.
        yield take(s, "restart")
    if not host.get_fact(SystemdEnabled, services=[UNIT]).get(UNIT):
        yield f"systemctl enable {UNIT}"


def configured(s) -> tuple:
    """The front's unit drop-in, Caddyfile, site file and TLS files in place, as operations:
    (the unit's, [the configuration's]), for `front_door` to restart or reload on."""
    pyinfra_files.directory(name="Front unit folder", path=s.front_dropin_dir, user="root", group="root", mode="0755")
    unit = uploads.upload(name="Front unit", src="templates/front.conf.j2", dest=s.front_dropin, mode="0644", s=s)
    pyinfra_files.directory(name="Front folder", path=s.front_dir, user="root", group=USER, mode="0750")
    uploads.upload(name="Front tool", src="files/front.sh", dest=s.front_tool, mode="0750")
    pyinfra_files.directory(name="Front sites", path=f"{s.front_dir}/sites", user="root", group=USER, mode="0750")
    configuration = [
        uploads.upload(name="Front Caddyfile", src="templates/Caddyfile.j2", dest=s.caddyfile, group=USER,
                       mode="0640", s=s),
        uploads.upload(name="Front site", src="templates/site.caddy.j2", dest=s.site_file, group=USER, mode="0640",
                       s=s),
        # Trusted to talk to a private ACME CA (acme_ca_root); the user's certificate, and
        # its key, readable by the front only (tls = {certificate, key}).
        ca_root(name="ACME CA root", s=s),
        certificate(name="Front certificate", s=s),
    ]
    return unit, configuration


def doors(s, unit, configuration: list) -> None:
    """On a host that serves no app (a balancer, a files host): the front restarted when
    its unit changed, reloaded when its configuration did, running and enabled."""
    front_door(name="Front door restarted", s=s, restart=True, _if=unit.did_change)
    front_door(name="Front door reloaded", s=s, reload=True,
               _if=[any_changed(*configuration), lambda: not unit.did_change()])
    front_door(name="Front door running", s=s)


def untaken(s) -> bool:
    """The front's files in place are not the ones Caddy last took (FrontApplied)."""
    return len(set(host.get_fact(FrontApplied, front_dir=s.front_dir, dropin=s.front_dropin))) != 1


def running() -> bool:
    """The front runs (as systemd says when asked: in deploy.py's own code, before the run
    changed anything; in an operation, when it runs)."""
    return bool(host.get_fact(SystemdStatus, services=[UNIT]).get(UNIT))


def follow(s, restart: bool) -> str:
    """How the front takes the files in place when it follows a socket that moves (the
    listener) or a first switch: "restart" or "reload", decided as the run is
    planned (the operations run `take` with it).

    + restart: the front's unit changes in this run (or it is not running): a restart
    """
    return "restart" if restart or not running() or untaken(s) else "reload"


def take(s, action: str) -> str:
    """The command that makes the front take the files in place now (files/front.sh):
    `action` "restart", "reload" (graceful) or "start", once Caddy has checked them; either
    failure one line. Run by front_door, and as soon as the app's socket let go of a port
    (`follow`), before the app listens again, which the front waits for (lb_try_duration)."""
    assert action in ("restart", "reload", "start"), action
    ports = (80, 443) if s.front_tls else (s.port,)
    words = ("env", f"FRONT_DROPIN={s.front_dropin}", s.front_tool, action, *ports)
    return " ".join(shell_quote(str(word)) for word in words)
