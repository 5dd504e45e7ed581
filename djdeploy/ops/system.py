"""What a stock Debian host lacks: the Debian packages, the app's system group and user.

Not pyinfra's apt.packages and server.user: their facts read every installed package, and
every account with its password hash (/etc/shadow); these ask only for the names they need
(docs/architecture.md, "Why this layout")."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import StringCommand, operation

from djdeploy.ops.facts import Account, MissingPackages
from djdeploy.shell import shell_quote

APT_UPDATE_TIMEOUT = 180  # seconds per try of `apt-get update`


@operation()
def debian_packages(packages: list):
    """The Debian packages `packages` are installed, from the host's own apt sources.

    + packages: package names

    Asks dpkg only: when every package is there nothing runs (no `apt-get update` on a
    no-op). Otherwise the package lists are updated once and the missing ones installed,
    without recommends; a failure is one line naming the packages and apt's own error.
    """
    missing = host.get_fact(MissingPackages, packages=tuple(packages))
    if not missing:
        return
    names = " ".join(shell_quote(p) for p in missing)
    apt = "apt-get -q -y -o DPkg::Lock::Timeout=300 -o Acquire::Retries=2"
    wait = int(APT_UPDATE_TIMEOUT)
    # The lists, in up to 3 tries of at most APT_UPDATE_TIMEOUT each: a fetch that stalls
    # (seen through a caching proxy that several hosts asked at the same moment) is cut
    # and tried again, instead of holding the deploy for ever.
    yield StringCommand(
        "export DEBIAN_FRONTEND=noninteractive; "
        f"for try in 1 2 3; do rc=0; out=$(timeout -k 10 {wait} {apt} update 2>&1) || rc=$?; [ $rc = 0 ] && break; "
        f"[ $rc = 124 ] && out=\"E: no answer within {wait} s\"; "
        "[ $try = 3 ] && { echo \"apt-get update failed on this host (3 tries; the last: "
        "$(printf '%s' \"$out\" | grep -E '^(E|Err):' | tail -n 1)): check its apt sources and proxy (/etc/apt)\" >&2; "
        "exit 1; }; sleep 2; done; "
        f"out=$({apt} install --no-install-recommends {names} 2>&1) || {{ echo \"could not install {names}: "
        "$(printf '%s' \"$out\" | grep -E '^E:' | tail -n 1 | grep . || printf '%s' \"$out\" | tail -n 1): "
        f"check the names (apt-cache policy {names}) and the host's apt sources\" >&2; exit 1; }}"
    )


@operation()
def system_group(group: str, user: str):
    """A system group `group` exists.

    + group: the group's name
    + user: the user that will be in it (read in the same lookup as `system_user`)
    """
    if host.get_fact(Account, user=user, group=group)["group"] is None:
        yield f"groupadd --system {shell_quote(group)}"


@operation()
def system_user(user: str, group: str, home: str, shell: str = "/usr/sbin/nologin"):
    """A system user `user` exists, in primary group `group`, with that home and shell.

    + user: the user's name
    + group: its primary group (see `system_group`)
    + home: its home directory; not created (the deploy owns that folder)
    + shell: its login shell; no login by default
    """
    account = host.get_fact(Account, user=user, group=group)["user"]
    if account is None:
        yield (f"useradd --system --no-create-home --home-dir {shell_quote(home)} --shell {shell_quote(shell)} "
               f"--gid {shell_quote(group)} {shell_quote(user)}")
        return
    changes = []
    if account["home"] != home:
        changes += ["--home", shell_quote(home)]
    if account["shell"] != shell:
        changes += ["--shell", shell_quote(shell)]
    if account["group"] != group:
        changes += ["--gid", shell_quote(group)]
    if changes:
        yield f"usermod {' '.join(changes)} {shell_quote(user)}"
