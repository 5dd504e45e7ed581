"""Uploads every web host serves: a files host (the files group) holds a project's MEDIA.

The app hosts write uploads there over SFTP, through django-storages' SFTPStorage (the
deploy installs it beside the app's requirements and makes it Django's default storage),
as the project's SFTP-only account: chrooted to /srv/uploads/<project>, its key made on
the files host and copied to the app hosts through the controller's memory (as the site's
SECRET_KEY is), usable from those hosts' addresses only, and the host key checked. The
files host's front (Caddy) serves them, with the headers the deploy's WSGI entry gives
uploads, and the project's balancers send MEDIA_URL there. A web host lost loses no upload.

Why SFTP to a files host, not object storage: nothing to run but Debian's OpenSSH and
Caddy, and django-storages (well kept, on PyPI) speaks it; a user with an S3 bucket keeps
the app's own STORAGES instead (`keep_app_settings`, docs/balancer.md).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy, operation

from djdeploy.ops import front, sftp
from djdeploy.ops.facts import PathOwner
from djdeploy.ops.system import debian_packages
from djdeploy.shell import shell_quote


@deploy("Uploads")
def server(s, clients: list):
    """The project's SFTP-only account and its folder, its key authorized from the app
    hosts (`clients`, preflight.app_addresses) alone, and the front that serves the uploads."""
    debian_packages(name="Debian packages", packages=[*front.PACKAGES, "openssh-server"])
    sftp.account(s.uploads_account, clients)
    uploads_folder(name="Uploads folder", s=s)
    front.doors(s, *front.configured(s))


@operation()
def uploads_folder(s):
    """<chroot>/media: the account's, group caddy (the front reads), setgid so that what the
    account writes there (umask 027: 0640, folders 2750) is the front's to read.

    + s: the files host's AppSettings
    """
    path = f"{s.uploads_root}/media"
    if host.get_fact(PathOwner, path=path) != f"{s.uploads_user} caddy 2750":
        quoted = shell_quote(path)
        yield f"mkdir -p {quoted} && chown {shell_quote(s.uploads_user)}:caddy {quoted} && chmod 2750 {quoted}"


def client(s, source):
    """An app host: the uploads account's key (the app reads it) and the files host's SSH
    host key, which SFTP checks."""
    sftp.copied_key(name="Uploads key", a=s.uploads_account, path=s.uploads_key, source=source, group=s.group)
    sftp.host_key(name="Uploads host key", path=s.uploads_known_hosts, address=s.uploads_host, source=source,
                  group=s.group)
