"""Backups on a fleet of its own: a web host on SQLite and a backup host (group_data/backup.py).
Rows and an upload written through the site come back on a fresh host from a backup; a
deploy whose release migrates backs up first (the snapshot in revisions.log), one that does
not takes none; a migration that destroys data and fails is undone by restoring that
snapshot; a damaged repository is caught by the verification (status.py, systemctl
--failed) and stops the next deploy that would migrate; the backup host holds no password
and no plain data; the no-op with backups is one command per host."""

from __future__ import annotations

import re
import secrets
import time

import pytest

from conftest import (PROJECT, ROOT, copy_project, note, notes, own_fleet, results, run_pyinfra, upload_file,
                      wait_http_200)

pytestmark = pytest.mark.fleet

FLEET = "bktest"
PASSWORD = secrets.token_urlsafe(24)
TOOL = f"/srv/{PROJECT}/backup/backup.sh"
VERIFY = f"{PROJECT}-backup-verify.service"
NOTES = ("0001_initial",)


@pytest.fixture(scope="module")
def hosts():
    with own_fleet(FLEET, 2, "bookworm", timeout=240, groups="web,backup") as fleet:
        yield fleet


def run(*args, cwd=ROOT, deploy="deploy.py", env=None):
    return run_pyinfra(*args, fleet=FLEET, cwd=cwd, deploy=deploy,
                       env={"DJDEPLOY_SECRET_BACKUP_PASSWORD": PASSWORD, **(env or {})})


@pytest.fixture(scope="module")
def deployed(hosts):
    first = run("-y")
    assert first.returncode == 0, first.stdout[-4000:]
    return first


def web(hosts):
    return hosts.by_group("web")[0]


def backup_host(hosts):
    return hosts.by_group("backup")[0]


def snapshot_of(output: str) -> str:
    found = re.findall(r"\] snapshot ([0-9a-f]{8})$", output, re.M)
    assert re.search(rf"\] snapshot {found[0] if found else '-'} restores: 1 database\(s\) whole", output), output[-3000:]
    assert len(found) == 1, output[-3000:]
    return found[0]


def migrating_app(target, *migrations: tuple[str, str]):
    """A project copy whose notes app has `migrations` too: (name, body of its operations)."""
    copy_project(target)
    folder = target / "app" / "notes" / "migrations"
    before = NOTES[-1]
    for name, operations in migrations:
        (folder / f"{name}.py").write_text(
            "from django.db import migrations, models\n\n\n"
            "def forget_notes(apps, schema_editor):\n    apps.get_model('notes', 'Note').objects.all().delete()\n\n\n"
            "def fail(apps, schema_editor):\n    raise RuntimeError('this migration fails on purpose')\n\n\n"
            f"class Migration(migrations.Migration):\n    atomic = False\n"
            f"    dependencies = [('notes', {before!r})]\n    operations = [{operations}]\n")
        before = name
    return target


def test_a_backup_comes_back_on_a_fresh_host(hosts, deployed):
    """Rows and an upload written through the site, a backup, a row after it; the web host
    destroyed and a fresh stock one in its place, deployed (an empty site), then restore.py:
    every row written before the backup and the upload are back, the later row is not."""
    host = web(hosts)
    kept = {f"kept-{i}" for i in range(3)}
    for text in kept:
        note(host, text)
    url = upload_file(host, "kept.txt", b"an upload the backup keeps\n")
    started = time.monotonic()
    taken = run("-y", deploy="backup.py")
    took = time.monotonic() - started
    assert taken.returncode == 0, taken.stdout[-3000:]
    snapshot = snapshot_of(taken.stdout)
    size = hosts.ssh(host, f"sed -n 's/^backup [0-9a-f]* [0-9]* //p' /srv/{PROJECT}/backup/status").stdout.split()[0]
    note(host, "lost")
    status = run(deploy="status.py")
    assert f"backup={snapshot}@" in status.stdout, status.stdout[-2000:]

    from fleet import hosts as fleet_tool
    fleet_tool.replace(FLEET, 1, timeout=240)
    fresh = run("-y")
    assert fresh.returncode == 0, fresh.stdout[-4000:]
    assert notes(host) == set(), "a fresh host starts with an empty database"

    preview = run("--dry", deploy="restore.py")
    assert preview.returncode == 0, preview.stdout[-3000:]
    assert f"would restore {snapshot}" in preview.stdout, preview.stdout[-3000:]
    assert notes(host) == set(), "a dry run changes nothing"
    started = time.monotonic()
    restored = run("-y", deploy="restore.py")
    print(f"\nbackup.py {took:.1f} s ({size} bytes: database and upload), restore.py onto a fresh host "
          f"{time.monotonic() - started:.1f} s")
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert f"restored {snapshot}" in restored.stdout, restored.stdout[-3000:]
    assert notes(host) == kept
    status, body = wait_http_200(f"http://{host['address']}{url}", timeout=30)
    assert (status, body) == (200, "an upload the backup keeps\n")


def test_a_release_that_migrates_backs_up_first_and_one_that_does_not_takes_none(hosts, deployed, tmp_path):
    host = web(hosts)
    note(host, "before the migration")
    project = migrating_app(tmp_path / "p", ("0002_note_tag", "migrations.AddField('note', 'tag', "
                                                               "models.CharField(max_length=20, null=True))"))
    migrated = run("-y", cwd=project)
    assert migrated.returncode == 0, migrated.stdout[-4000:]
    log = hosts.ssh(host, f"cat /srv/{PROJECT}/revisions.log").stdout.splitlines()
    release = log[-1].split()[1]
    backed = [line for line in log if line.split()[1] == release and "backed up before its migrations" in line]
    assert len(backed) == 1, log[-6:]
    snapshot = backed[0].rsplit(" ", 1)[-1]
    listed = hosts.ssh(host, f"{TOOL} plan {snapshot}").stdout
    assert listed.startswith(f"would restore {snapshot}"), listed

    (project / "app" / "project" / "views.py").write_text(
        (project / "app" / "project" / "views.py").read_text() + "\n# no migration in this release\n")
    code_only = run("-y", cwd=project)
    assert code_only.returncode == 0, code_only.stdout[-4000:]
    after = hosts.ssh(host, f"cat /srv/{PROJECT}/revisions.log").stdout.splitlines()
    new = after[len(log):]
    assert new and all("backed up" not in line for line in new), new

    run("-y", cwd=project)  # the facts this fleet asks, learnt
    again = run("-y", cwd=project, env={"DJDEPLOY_COUNT_COMMANDS": "1"})
    assert results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-3000:]
    counts = dict(re.findall(r"remote commands: (\S+) (\d+)", again.stdout))
    assert counts and set(counts.values()) == {"1"}, counts


def test_a_migration_that_destroys_data_and_fails_is_undone_by_its_backup(hosts, deployed, tmp_path):
    """A migration (not atomic) that deletes every note, then fails: the release is refused,
    the data is gone; restore.py with the snapshot revisions.log names brings it back."""
    host = web(hosts)
    note(host, "precious")
    before = notes(host)
    project = migrating_app(tmp_path / "p",
                            ("0002_note_tag", "migrations.AddField('note', 'tag', "
                                              "models.CharField(max_length=20, null=True))"),
                            ("0003_forget", "migrations.RunPython(forget_notes), migrations.RunPython(fail)"))
    failed = run("-y", cwd=project)
    assert failed.returncode != 0, failed.stdout[-3000:]
    assert "this migration fails on purpose" in failed.stdout, failed.stdout[-3000:]
    assert notes(host) == set(), "the migration deleted the notes before it failed"
    log = hosts.ssh(host, f"cat /srv/{PROJECT}/revisions.log").stdout.splitlines()
    snapshot = [line for line in log if "backed up before its migrations" in line][-1].rsplit(" ", 1)[-1]
    restored = run("-y", "--data", f"backup={snapshot}", deploy="restore.py")
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert notes(host) == before


def columns(hosts, host) -> list[str]:
    return hosts.ssh(host, f"python3 -c \"import sqlite3; print(' '.join(r[1] for r in sqlite3.connect("
                           f"'/srv/{PROJECT}/shared/data/db.sqlite3').execute('pragma table_info(notes_note)')))\""
                     ).stdout.split()


def test_a_rollback_past_a_migration_stops_then_reverses_it_or_restores_its_backup(hosts, deployed, tmp_path):
    """A release adds a column; rollback.py to the release before it stops, naming the
    migration; with rollback_data=reverse the column goes and the rows stay; deployed again
    (the release prepared before), the column is back; with rollback_data=restore the
    backup taken before that deploy comes back: a row written since is gone."""
    host = web(hosts)
    current = lambda: hosts.ssh(host, f"readlink /srv/{PROJECT}/current").stdout.strip()  # noqa: E731
    project = migrating_app(tmp_path / "p", ("0002_note_tag", "migrations.AddField('note', 'tag', "
                                                              "models.CharField(max_length=20, null=True))"),
                            ("0003_more", "migrations.AddField('note', 'more', models.CharField(max_length=20, "
                                          "null=True))"))
    assert run("-y", cwd=project).returncode == 0
    assert "more" in columns(hosts, host)
    note(host, "kept through a reverse")
    serving = current()
    stopped = run("-y", deploy="rollback.py")
    assert stopped.returncode != 0
    assert re.search(r"does not know migrations the database has applied: notes\.0003_more; roll back with "
                     r"--data rollback_data=reverse .* or --data rollback_data=restore \(puts back backup [0-9a-f]{8}",
                     stopped.stdout), stopped.stdout[-3000:]
    assert current() == serving

    reversed_ = run("-y", "--data", "rollback_data=reverse", deploy="rollback.py")
    assert reversed_.returncode == 0, reversed_.stdout[-3000:]
    assert current() != serving and "more" not in columns(hosts, host)
    assert "kept through a reverse" in notes(host)

    again = run("-y", cwd=project)  # the release it left, prepared before: migrated again, backed up first
    assert again.returncode == 0, again.stdout[-3000:]
    assert current() == serving and "more" in columns(hosts, host)
    log = hosts.ssh(host, f"cat /srv/{PROJECT}/revisions.log").stdout.splitlines()
    assert "backed up before its migrations" in log[-2] and log[-2].split()[1] == serving.rsplit("/", 1)[-1], log[-3:]
    note(host, "written after that backup")
    restored = run("-y", "--data", "rollback_data=restore", deploy="rollback.py")
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert "more" not in columns(hosts, host)
    texts = notes(host)
    assert "kept through a reverse" in texts and "written after that backup" not in texts, texts


def test_the_backup_host_holds_no_password_and_no_plain_data(hosts, deployed):
    host, keeper = web(hosts), backup_host(hosts)
    note(host, "a secret row 7f3e")
    assert run("-y", deploy="backup.py").returncode == 0
    found = hosts.ssh(keeper, f"grep -rl -e {PASSWORD} -e 'a secret row 7f3e' /srv /etc /root /home /tmp /var/lib "
                              "2>/dev/null || true", timeout=120).stdout.strip()
    assert found == ""
    modes = hosts.ssh(host, f"stat -c '%a %U %G' /srv/{PROJECT}/backup /srv/{PROJECT}/backup/password "
                            f"/srv/{PROJECT}/backup/key").stdout.splitlines()
    assert modes == ["700 root root", "600 root root", "600 root root"], modes
    repo = hosts.ssh(keeper, f"stat -c '%a %U' /srv/backups/{PROJECT}/repo").stdout.strip()
    assert repo == f"700 bk-{PROJECT}"[:35], repo
    for unit in (f"{PROJECT}-backup.service", VERIFY):
        shown = hosts.ssh(host, f"systemd-analyze security --no-pager {unit} | tail -n 1").stdout
        exposure = float(re.search(r"exposure level for \S+: ([0-9.]+)", shown).group(1))
        assert exposure <= 3.0, shown


def test_a_damaged_repository_is_caught_and_stops_the_next_migrating_deploy(hosts, deployed, tmp_path):
    """Pack files of the repository changed on the backup host: the verification's unit
    fails (systemctl --failed), status.py says FAILED, and a deploy that would migrate stops
    with one line naming the way past it, leaving the release in place."""
    host, keeper = web(hosts), backup_host(hosts)
    assert run("-y", deploy="backup.py").returncode == 0
    hosts.ssh(host, f"systemctl start {VERIFY}")  # passes while the repository is whole
    hosts.ssh(keeper, f"for f in $(find /srv/backups/{PROJECT}/repo -path '*/data/*' -type f); do "
                      "printf 'damaged' | dd of=$f bs=1 seek=40 conv=notrunc status=none; done")
    assert hosts.ssh(host, f"systemctl start {VERIFY}", check=False).returncode != 0
    assert VERIFY in hosts.ssh(host, "systemctl --failed --no-legend").stdout
    status = run(deploy="status.py")
    assert "verified=FAILED@" in status.stdout, status.stdout[-2000:]

    serving = hosts.ssh(host, f"readlink /srv/{PROJECT}/current").stdout.strip()
    project = migrating_app(tmp_path / "p", ("0002_note_tag", "migrations.AddField('note', 'tag', "
                                                              "models.CharField(max_length=20, null=True))"),
                            ("0003_more", "migrations.AddField('note', 'more', "
                                          "models.CharField(max_length=20, null=True))"))
    refused = run("-y", cwd=project)
    assert refused.returncode != 0
    assert "migrate_without_backup=true" in refused.stdout, refused.stdout[-3000:]
    assert hosts.ssh(host, f"readlink /srv/{PROJECT}/current").stdout.strip() == serving
