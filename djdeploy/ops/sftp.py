"""An SFTP-only account on a host of the fleet that the project's app hosts reach: the files
host's (uploads) and the backup host's (restic's repository). Chrooted to a folder of
root's, its key made on that host and copied to the app hosts through the controller's
memory (as the site's SECRET_KEY is), usable from those hosts' addresses only, every other
SSH feature off, and the host key checked from the app hosts' side.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FunctionCommand, OperationError, deploy, operation
from pyinfra.operations import files

from djdeploy.config.appsettings import SftpAccount
from djdeploy.ops import uploads
from djdeploy.ops.facts import FileText, SecretDigest
from djdeploy.ops.system import system_group, system_user
from djdeploy.ops.uploads import copy_secrets
from djdeploy.shell import shell_quote

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"  # the serving host's, which the app hosts check


@deploy("SFTP account")
def account(a: SftpAccount, clients: list):
    """Account `a` and its chroot (root's, 0755), its key authorized from `clients` (the app
    hosts' addresses) alone, and sshd's rules for it. The caller makes what the account
    writes in the chroot."""
    system_group(name="Account group", group=a.user, user=a.user)
    system_user(name="Account", user=a.user, group=a.user, home="/")
    files.directory(name="Accounts' root", path=a.root.rsplit("/", 1)[0], user="root", group="root", mode="0755")
    files.directory(name="Account's chroot", path=a.root, user="root", group="root", mode="0755")
    account_key(name="Account's key", a=a, clients=clients)
    rules = uploads.upload(name="Account's rules", src="templates/sshd-account.conf.j2", dest=a.dropin,
                           mode="0644", a=a)
    sshd_reloaded(name="SSH takes the rules", a=a, _if=rules.did_change)


@operation()
def account_key(a: SftpAccount, clients: list):
    """The account's key pair exists on this host (made here, never elsewhere), and its
    public half is authorized from `clients` alone, with every other SSH feature off
    (`restrict`).

    + a: the account
    + clients: the app hosts' addresses
    """
    key, public, authorized = a.key, f"{a.key}.pub", a.authorized
    mine = host.get_fact(FileText, path=public)
    if mine is None:
        yield (f"rm -f {shell_quote(key)} {shell_quote(public)} && ssh-keygen -q -t ed25519 -N '' "
               f"-C {shell_quote(f'djdeploy-{a.purpose}-{a.project}')} -f {shell_quote(key)}")
    prefix = f'from="{",".join(clients)}",restrict'
    if mine is None or host.get_fact(FileText, path=authorized) != f"{prefix} {mine}":
        part = shell_quote(authorized + ".part")
        yield (f"printf '%s %s\\n' {shell_quote(prefix)} \"$(cat {shell_quote(public)})\" > {part} && "
               f"chmod 0644 {part} && mv -f {part} {shell_quote(authorized)}")


@operation()
def sshd_reloaded(a: SftpAccount):
    """sshd takes the account's rules (run it `_if` they changed), after `sshd -t` accepted
    them: a refused file goes, and the run stops with sshd's line, so the host's SSH keeps
    working.

    + a: the account
    """
    dropin = shell_quote(a.dropin)
    yield (f"out=$(sshd -t 2>&1) || {{ rm -f {dropin}; echo \"sshd refused the {a.purpose} account's rules, "
           f"removed: $(printf '%s' \"$out\" | head -n 1 | cut -c1-300)\" >&2; exit 1; }}; systemctl reload ssh")


@operation()
def host_key(path: str, address: str, source, group: str):
    """This app host knows the SSH host key of `source` (SFTP refuses any other), at `path`.

    + path: the known_hosts file here (root:`group` 0640)
    + address: the name or address this host reaches `source` at
    + source: the serving host (pyinfra's Host)
    + group: who may read it here
    """
    theirs = source.get_fact(FileText, path=HOST_KEY)
    if not theirs:
        raise OperationError(f"{source.name} has no {HOST_KEY}: is OpenSSH's server there?")
    kind, key = theirs.split()[:2]
    line = f"{address} {kind} {key}"
    if host.get_fact(FileText, path=path) != line:
        quoted = shell_quote(path)
        yield (f"printf '%s\\n' {shell_quote(line)} > {quoted}.part && chown root:{shell_quote(group)} {quoted}.part "
               f"&& chmod 0640 {quoted}.part && mv -f {quoted}.part {quoted}")


@operation()
def copied_key(a: SftpAccount, path: str, source, group: str, mode: str = "0640"):
    """This app host has the account's key at `path` (root:`group` `mode`), the one `source`
    made; copied through memory when it differs (salted digests).

    + a: the account on `source`
    + path: where the key goes here
    + source: the serving host (pyinfra's Host)
    + group: who may read it here
    + mode: its mode here (0600 for a key root uses: ssh refuses one others may read)
    """
    salt = f"djdeploy-{a.purpose}:{a.project}"
    if not host.state.is_host_in_limit(source):
        return
    mine = host.get_fact(SecretDigest, path=path, salt=salt)
    if mine is not None and source.get_fact(SecretDigest, path=a.key, salt=salt) == mine:
        return
    yield FunctionCommand(copy_secrets, (source, ((a.key, path),), group, mode), {})
