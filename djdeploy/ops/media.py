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
from pyinfra.api import FunctionCommand, OperationError, deploy, operation
from pyinfra.operations import files

from djdeploy.ops import front, uploads
from djdeploy.ops.facts import FileText, PathOwner, SecretDigest
from djdeploy.ops.system import debian_packages, system_group, system_user
from djdeploy.ops.uploads import copy_secrets
from djdeploy.shell import shell_quote

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"  # the files host's, which the app hosts check
SSHD_DIR = "/etc/ssh/sshd_config.d"


def sshd_dropin(s) -> str:
    return f"{SSHD_DIR}/djdeploy-uploads-{s.project}.conf"


@deploy("Uploads")
def server(s, clients: list):
    """The project's SFTP-only account and its folder, its key authorized from the app
    hosts (`clients`, preflight.files_clients) alone, and the front that serves the uploads."""
    debian_packages(name="Debian packages", packages=[*front.PACKAGES, "openssh-server"])
    system_group(name="Uploads group", group=s.uploads_user, user=s.uploads_user)
    system_user(name="Uploads account", user=s.uploads_user, group=s.uploads_user, home="/")
    files.directory(name="Uploads root", path="/srv/uploads", user="root", group="root", mode="0755")
    files.directory(name="Uploads chroot", path=s.uploads_root, user="root", group="root", mode="0755")
    uploads_folder(name="Uploads folder", s=s)
    account_key(name="Uploads key", s=s, clients=clients)
    rules = uploads.upload(name="Uploads account rules", src="templates/sshd-uploads.conf.j2", dest=sshd_dropin(s),
                           mode="0644", s=s)
    sshd_reloaded(name="SSH takes the rules", s=s, _if=rules.did_change)
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


@operation()
def account_key(s, clients: list):
    """The SFTP account's key pair exists on the files host (made here, never elsewhere),
    and its public half is authorized from the project's app hosts' addresses alone, with
    every other SSH feature off (`restrict`).

    + s: the files host's AppSettings
    + clients: the app hosts' addresses
    """
    key, public, authorized = s.uploads_account_key, f"{s.uploads_account_key}.pub", s.uploads_authorized
    mine = host.get_fact(FileText, path=public)
    if mine is None:
        yield (f"rm -f {shell_quote(key)} {shell_quote(public)} && ssh-keygen -q -t ed25519 -N '' "
               f"-C {shell_quote('djdeploy-uploads-' + s.project)} -f {shell_quote(key)}")
    prefix = f'from="{",".join(clients)}",restrict'
    if mine is None or host.get_fact(FileText, path=authorized) != f"{prefix} {mine}":
        part = shell_quote(authorized + ".part")
        yield (f"printf '%s %s\\n' {shell_quote(prefix)} \"$(cat {shell_quote(public)})\" > {part} && "
               f"chmod 0644 {part} && mv -f {part} {shell_quote(authorized)}")


@operation()
def sshd_reloaded(s):
    """sshd takes the account's rules (run it `_if` they changed), after `sshd -t` accepted
    them: a refused file goes, and the run stops with sshd's line, so the host's SSH keeps
    working.

    + s: the files host's AppSettings
    """
    dropin = shell_quote(sshd_dropin(s))
    yield (f"out=$(sshd -t 2>&1) || {{ rm -f {dropin}; echo \"sshd refused the uploads account's rules, "
           f"removed: $(printf '%s' \"$out\" | head -n 1 | cut -c1-300)\" >&2; exit 1; }}; systemctl reload ssh")


@operation()
def host_key(s, source):
    """The app host knows the files host's SSH host key (SFTP refuses any other).

    + s: the app host's AppSettings
    + source: the files host (pyinfra's Host)
    """
    theirs = source.get_fact(FileText, path=HOST_KEY)
    if not theirs:
        raise OperationError(f"the files host {source.name} has no {HOST_KEY}: is OpenSSH's server there?")
    kind, key = theirs.split()[:2]
    line = f"{s.uploads_host} {kind} {key}"
    if host.get_fact(FileText, path=s.uploads_known_hosts) != line:
        path = shell_quote(s.uploads_known_hosts)
        yield (f"printf '%s\\n' {shell_quote(line)} > {path}.part && chown root:{shell_quote(s.group)} {path}.part "
               f"&& chmod 0640 {path}.part && mv -f {path}.part {path}")


@operation()
def copied_key(s, source):
    """The app host has the SFTP account's key (root:<group> 0640: the app reads it), the
    one the files host made; copied through memory when it differs (salted digests).

    + s: the app host's AppSettings
    + source: the files host (pyinfra's Host)
    """
    salt = f"djdeploy-uploads:{s.project}"
    there = s.uploads_account_key
    if not host.state.is_host_in_limit(source):
        return
    mine = host.get_fact(SecretDigest, path=s.uploads_key, salt=salt)
    if mine is not None and source.get_fact(SecretDigest, path=there, salt=salt) == mine:
        return
    yield FunctionCommand(copy_secrets, (source, ((there, s.uploads_key),), s.group), {})
