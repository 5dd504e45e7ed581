"""Backups of a project on SQLite: its database files and uploads (shared/data, shared/media)
in a restic repository on the project's backup host (the backup group), over SFTP; and the
uploads a files host keeps (whatever the database), the same way.

The backup host holds only ciphertext: an SFTP-only account (djdeploy.ops.sftp), chrooted,
reachable from the project's app hosts alone. The repository's password (secret
BACKUP_PASSWORD, the operator's) and the account's key are on the app hosts, root's alone:
the app can neither read its backups nor delete them, and the backup host cannot read them.
Each app host backs up its own database (SQLite: each host is a site of its own), by the
tool files/backup.sh: on a systemd timer (data: backups.schedule), before every release
that migrates (release.sh), and by backup.py; a second timer (backups.verify) restores the
latest snapshot into scratch space and checks it. restore.py puts one back.

Why restic: in Debian (0.14), encrypted and deduplicated, and its SFTP backend needs
nothing on the backup host but OpenSSH; BorgBackup needs itself installed there too.
"""

from __future__ import annotations

import re
import sys

from pyinfra import host
from pyinfra.api import FunctionCommand, OperationError, deploy, operation
from pyinfra.operations import files

from djdeploy.config.keys import UNITS
from djdeploy.ops import sftp
from djdeploy.ops.facts import BackupPlan, FileText, PathOwner
from djdeploy.ops.services import timers_waiting
from djdeploy.ops.system import debian_packages
from djdeploy.ops.uploads import secret_file, upload
from djdeploy.shell import privilege, shell_quote
from djdeploy.terminal import printable

PACKAGES = ["restic"]  # on the app hosts; the backup host needs OpenSSH's server alone


@deploy("Backups")
def server(s, clients: list):
    """The backup host: the project's SFTP-only account, its key authorized from the app
    hosts (`clients`) alone, and its repository folder."""
    debian_packages(name="Debian packages", packages=["openssh-server"])
    sftp.account(s.backup_account, clients)
    repository_folder(name="Repository folder", s=s)


@operation()
def repository_folder(s):
    """<chroot>/repo: the account's alone (0700).

    + s: the backup host's AppSettings
    """
    a = s.backup_account
    path = f"{a.root}/repo"
    if host.get_fact(PathOwner, path=path) != f"{a.user} {a.user} 700":
        quoted = shell_quote(path)
        yield f"mkdir -p {quoted} && chown {shell_quote(a.user)}:{shell_quote(a.user)} {quoted} && chmod 0700 {quoted}"


def client(s, source, password: str):
    """An app host: the backup tool, its settings and secrets (root's alone), the repository
    made once, and the timers that back up and verify.

    + s: the app host's AppSettings
    + source: the backup host (pyinfra's Host)
    + password: BACKUP_PASSWORD
    """
    files.directory(name="Backup folder", path=s.backup_dir, user="root", group="root", mode="0700")
    sftp.copied_key(name="Backup key", a=s.backup_account, path=f"{s.backup_dir}/key", source=source, group="root",
                    mode="0600")
    sftp.host_key(name="Backup host key", path=f"{s.backup_dir}/known_hosts", address=s.backup_host,
                  source=source, group="root")
    secret_file(name="Backup password", path=f"{s.backup_dir}/password", text=password,
                salt=f"djdeploy-backup:{s.project}", shown="the backup password")
    upload(name="Backup tool", src="files/backup.sh", dest=s.backup_tool, mode="0700")
    upload(name="Backup settings", src="templates/backup.conf.j2", dest=f"{s.backup_dir}/backup.conf", mode="0600",
           s=s, conf=settings(s, host.name))
    repository_made(name="Backup repository", s=s)
    timers(name="Backup timers", s=s)


def repository(s, name: str) -> str:
    """Host `name`'s own repository on the backup host: one per app host, so that no host
    waits for another's restic lock, none can prune or damage another's, and a fresh host
    of the same name finds its predecessor's."""
    return f"sftp:{s.backup_account.user}@{s.backup_host}:/repo/{re.sub(r'[^A-Za-z0-9._-]', '_', name)}"


def settings(s, name: str) -> list:
    """backup.conf's (name, shell-quoted value) pairs, for app host `name`."""
    a = s.backup_account
    ssh = (f"ssh -i {s.backup_dir}/key -o UserKnownHostsFile={s.backup_dir}/known_hosts -o StrictHostKeyChecking=yes "
           f"-o BatchMode=yes -o ConnectTimeout=15 -o ServerAliveInterval=15 {a.user}@{s.backup_host} -s sftp")
    b = s.backups
    # A files host keeps the uploads alone (no database, nothing to stop while they move).
    data, media, mode = ("", f"{s.uploads_root}/media", "2750") if s.files_server else (s.data_dir, s.media_dir, "0750")
    user, group = (s.uploads_user, "caddy") if s.files_server else (s.user, s.group)
    values = {
        "PROJECT": s.project, "DATA": data, "MEDIA": media, "MEDIA_MODE": mode, "APP_USER": user, "APP_GROUP": group,
        "UNITS": "" if s.files_server else " ".join(s.app_units),  # what a restore stops while the data moves
        "REPOSITORY": repository(s, name), "SSH_COMMAND": ssh,
        # every snapshot of the last keep_daily days (those taken before migrations too), then one a day...
        "KEEP": (f"--keep-within {max(b.keep_daily, 1)}d --keep-daily {b.keep_daily} --keep-weekly {b.keep_weekly} "
                 f"--keep-monthly {b.keep_monthly}"),
    }
    return [(name, shell_quote(value)) for name, value in values.items()]


@operation()
def repository_made(s):
    """This host's restic repository exists on the backup host (made once: `backup.sh init`,
    which notes its address in backup/repository).

    + s: the app host's AppSettings
    """
    if host.get_fact(FileText, path=f"{s.backup_dir}/repository") != repository(s, host.name):
        yield f"{shell_quote(s.backup_tool)} init"


@operation()
def timers(s):
    """The scheduled backup (then restic's forget, as data's keep_* says) and the
    verification, each a systemd timer, enabled and waiting.

    + s: the app host's AppSettings
    """
    changed = False
    for verb, unit in zip(("take", "verify"), s.backup_units):
        for kind in ("service", "timer"):
            name = unit.replace(".service", f".{kind}")
            commands = list(upload._inner(src=f"templates/backup.{kind}.j2", dest=f"{UNITS}/{name}", mode="0644",
                                          s=s, verb=verb, unit=unit))
            changed = changed or bool(commands)
            yield from commands
    if changed:
        yield "systemctl daemon-reload"
    yield from timers_waiting([u.replace(".service", ".timer") for u in s.backup_units], changed)


def ran(host, command: str) -> tuple:
    """`command` run on `host` as the deploy runs commands, unprinted: (ok, its non-empty
    lines, stdout then stderr)."""
    ok, output = host.run_shell_command(command, print_output=False, print_input=False, **privilege(host))
    return ok, [line for line in output.stdout_lines + output.stderr_lines if line.strip()]


def said(state, host, command: str, what: str) -> bool:
    """Run a backup tool's `command` on `host`; print its last line, prefixed by the host
    (hosts' bytes made printable); a failure stops the host with the tool's line."""
    ok, lines = ran(host, command)
    if not ok:
        raise OperationError(printable(f"{what} failed: {lines[-1] if lines else 'no output'}"))
    print(printable(f"    [{host.name}] {lines[-1] if lines else what}"), file=sys.stderr, flush=True)
    return True


@operation(is_idempotent=False)
def taken(s):
    """A snapshot now (backup.py), its id printed; then the proof that it restores (the
    verification, which also clears a failed one from status.py).

    + s: the app host's AppSettings
    """
    tool = shell_quote(s.backup_tool)
    # Nothing to back up yet (exit 3: no database with a table, no upload) is said, not a failure.
    yield FunctionCommand(said, (f"{tool} take manual || [ $? = 3 ]", "the backup"), {})
    yield FunctionCommand(said, (f"if {tool} last | grep -q '^backup '; then {tool} verify; "
                                  "else echo 'no backup to verify yet'; fi", "the verification"), {})


def restore_plan(host, s, snapshot: str) -> None:
    """Print what restoring `snapshot` ("latest", or an id) on `host` would replace, as its
    backup tool says (restore.py's first step: a dry run shows it); a snapshot that cannot
    be restored stops the run with the tool's line."""
    plan = host.get_fact(BackupPlan, tool=s.backup_tool, snapshot=snapshot)
    if plan is None:
        raise OperationError(f"{host.name} has no backup tool yet: deploy it first (pyinfra inventory.py deploy.py)")
    start = next((n for n, line in enumerate(plan) if line.startswith("would restore")), None)
    if start is None:
        raise OperationError(printable(f"{host.name}: {plan[-1] if plan else 'the backup tool said nothing'}"))
    for line in plan[start:]:
        print(printable(f"    [{host.name}] {line}"), file=sys.stderr, flush=True)


@operation(is_idempotent=False)
def restored(s, snapshot: str):
    """Snapshot `snapshot` ("latest", or an id) in place of the host's data and uploads
    (restore.py, after `restore_plan`), the app stopped while they move.

    + s: the app host's AppSettings
    + snapshot: "latest" or a snapshot id
    """
    yield FunctionCommand(said, (f"{shell_quote(s.backup_tool)} restore {shell_quote(snapshot)}", "the restore"), {})
