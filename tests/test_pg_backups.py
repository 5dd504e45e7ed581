"""Backups of PostgreSQL on a fleet of its own: a db host, two web hosts and a backup host
(pgBackRest's repository host). The first deploy makes the stanza and a full backup, and
the no-op stays one command per host; a deploy that migrates backs up first (the label in
revisions.log), one that does not takes none, and a migration that destroys rows is undone
by restoring that backup; a point in time between two writes comes back without the later
one; a fresh db host in place of a destroyed one gets every row back; the repository holds
no plain data and the db host no passphrase; a damaged repository fails the verification
(systemctl --failed, status.py) and stops the next deploy that would migrate."""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time

import pytest

from conftest import PROJECT, ROOT, copy_project, note, notes, own_fleet, run_pyinfra

pytestmark = pytest.mark.fleet

FLEET = "pgbk"
BACKUP_PASSWORD = secrets.token_urlsafe(24)
DATABASE_PASSWORD = secrets.token_urlsafe(24)
TOOL = "/usr/local/sbin/djdeploy-pgbackrest"
LABEL = r"[0-9]{8}-[0-9]{6}F(?:_[0-9]{8}-[0-9]{6}[DI])?"


@pytest.fixture(scope="module")
def hosts():
    with own_fleet(FLEET, 4, "bookworm", timeout=240, groups="db,web,web,backup") as fleet:
        yield fleet


def run(*args, cwd=ROOT, deploy="deploy.py", env=None):
    return run_pyinfra(*args, fleet=FLEET, cwd=cwd, deploy=deploy,
                       env={"DJDEPLOY_SECRET_BACKUP_PASSWORD": BACKUP_PASSWORD,
                            "DJDEPLOY_SECRET_DATABASE_PASSWORD": DATABASE_PASSWORD, **(env or {})})


@pytest.fixture(scope="module")
def deployed(hosts):
    started = time.monotonic()
    first = run("-y")
    assert first.returncode == 0, first.stdout[-4000:]
    print(f"\n4-host fleet (db, 2 web, backup): first deploy {time.monotonic() - started:.1f} s")
    return first


def db(hosts):
    return hosts.by_group("db")[0]


def web(hosts):
    return hosts.by_group("web")


def keeper(hosts):
    return hosts.by_group("backup")[0]


def backups(hosts) -> list[str]:
    """The stanza's backups, oldest first, as pgBackRest's info lists them."""
    out = hosts.ssh(keeper(hosts), "runuser -u postgres -- pgbackrest --output=json info").stdout
    return [b["label"] for stanza in json.loads(out) for b in stanza.get("backup", [])]


def migrating_app(target, name: str, operations: str):
    """A project copy whose notes app has one more migration (`operations`)."""
    copy_project(target)
    (target / "app" / "notes" / "migrations" / f"{name}.py").write_text(
        "from django.db import migrations, models\n\n\n"
        "def forget_notes(apps, schema_editor):\n    apps.get_model('notes', 'Note').objects.all().delete()\n\n\n"
        "def fail(apps, schema_editor):\n    raise RuntimeError('this migration fails on purpose')\n\n\n"
        "class Migration(migrations.Migration):\n    atomic = False\n"
        f"    dependencies = [('notes', '0001_initial')]\n    operations = [{operations}]\n")
    return target


def test_the_first_deploy_backs_up_the_cluster_and_the_noop_is_one_command_per_host(hosts, deployed):
    """A stanza with a full backup from the first deploy, WAL archived to the backup host, the
    timers waiting there; the no-op is one command per host; the db host holds no
    passphrase, the backup host's is root:postgres 0640, and the repository no plain row."""
    assert len(backups(hosts)) >= 1
    archiver = hosts.ssh(db(hosts), "runuser -u postgres -- psql -XAtq -d postgres -c "
                                    "'SELECT archived_count, failed_count FROM pg_stat_archiver'").stdout.strip()
    archived, failed = map(int, archiver.split("|"))
    assert archived > 0 and failed == 0, archiver
    timers = hosts.ssh(keeper(hosts), "systemctl is-active djdeploy-pgbackrest-take.timer "
                                      "djdeploy-pgbackrest-verify.timer").stdout.split()
    assert timers == ["active", "active"]
    for _ in range(2):  # the first no-op learns the facts to batch
        again = run("-y", env={"DJDEPLOY_COUNT_COMMANDS": "1"})
        assert again.returncode == 0, again.stdout[-3000:]
    counts = dict(re.findall(r"remote commands: (\S+) (\d+)", again.stdout))
    assert counts and set(counts.values()) == {"1"}, counts

    marker = f"plain-{secrets.token_hex(6)}"
    note(web(hosts)[0], marker)
    taken = run("-y", deploy="backup.py")
    assert taken.returncode == 0, taken.stdout[-3000:]
    assert re.search(rf"\] backup {LABEL} restores: 1 database\(s\), \d+ tables, \d+ rows", taken.stdout), \
        taken.stdout[-3000:]
    mode = hosts.ssh(keeper(hosts), "stat -c '%U:%G %a' /etc/pgbackrest/conf.d/cipher.conf").stdout.strip()
    assert mode == "root:postgres 640"
    found = hosts.ssh(keeper(hosts), f"grep -rl -- {marker} /var/lib/pgbackrest; "
                                     "zstdcat -r /var/lib/pgbackrest/archive 2>/dev/null | grep -c -- " + marker,
                      check=False).stdout.split()
    assert found in (["0"], []), found
    on_db = hosts.ssh(db(hosts), f"grep -rl -- {BACKUP_PASSWORD} /etc /var/lib/postgresql/.ssh /srv 2>/dev/null; true")
    assert on_db.stdout.strip() == ""
    exposure = hosts.ssh(keeper(hosts), "systemd-analyze security djdeploy-pgbackrest-verify.service "
                                        "| tail -n 1").stdout
    assert float(re.search(r"exposure level .*?: ([0-9.]+)", exposure).group(1)) <= 3.0, exposure


def test_a_migration_is_backed_up_first_and_a_restore_undoes_what_it_destroyed(hosts, deployed, tmp_path):
    """A release that migrates backs up first (its label in revisions.log); one that does not
    takes no backup; a migration that deletes every row and then fails is undone by
    restore.py with that label."""
    before = backups(hosts)
    same = run("-y")
    assert same.returncode == 0, same.stdout[-3000:]
    assert backups(hosts) == before, "a deploy without migrations takes no backup"

    for i in range(3):
        note(web(hosts)[0], f"before-{i}")
    kept = notes(web(hosts)[0])
    app = migrating_app(tmp_path / "destroying", "0002_forget",
                        "migrations.RunPython(forget_notes), migrations.RunPython(fail)")
    failed = run("-y", cwd=app)
    assert failed.returncode != 0, failed.stdout[-3000:]
    log = hosts.ssh(web(hosts)[0], f"cat /srv/{PROJECT}/revisions.log").stdout
    label = re.findall(rf"backed up before its migrations: snapshot ({LABEL})$", log, re.M)
    assert label, log[-2000:]
    assert notes(web(hosts)[0]) == set(), "the migration deleted the rows (atomic = False) before it failed"

    preview = run("--dry", "--limit", db(hosts)["address"], "--data", f"backup={label[-1]}", deploy="restore.py")
    assert preview.returncode == 0, preview.stdout[-3000:]
    assert f"would restore the cluster as backup {label[-1]} left it" in preview.stdout, preview.stdout[-3000:]
    restored = run("-y", "--limit", db(hosts)["address"], "--data", f"backup={label[-1]}", deploy="restore.py")
    assert restored.returncode == 0, restored.stdout[-3000:]
    for host in web(hosts):
        assert notes(host) == kept


def test_a_point_in_time_between_two_writes_comes_back_without_the_later_one(hosts, deployed):
    """Rows at t1, a time between, rows at t2; restore.py to that time: the t1 rows only."""
    first = {f"t1-{i}" for i in range(2)}
    for text in first:
        note(web(hosts)[0], text)
    time.sleep(2)
    between = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    time.sleep(2)
    note(web(hosts)[1], "t2")
    taken = run("-y", deploy="backup.py")  # a WAL switch: the archive reaches past t2
    assert taken.returncode == 0, taken.stdout[-3000:]
    assert first | {"t2"} <= notes(web(hosts)[0])

    started = time.monotonic()
    restored = run("-y", "--limit", db(hosts)["address"], "--data", f"restore_to={between}", deploy="restore.py")
    print(f"\nrestore.py to a point in time: {time.monotonic() - started:.1f} s")
    assert restored.returncode == 0, restored.stdout[-3000:]
    after = notes(web(hosts)[1])
    assert first <= after and "t2" not in after, after


def test_a_fresh_db_host_gets_every_row_back(hosts, deployed):
    """Rows, a backup; the db host destroyed and a fresh stock one in its place, deployed (an
    empty database; the deploy says the backups are another cluster's), then restore.py:
    every row is back, and backups go on."""
    for i in range(3):
        note(web(hosts)[0], f"kept-{i}")
    kept = notes(web(hosts)[0])
    taken = run("-y", deploy="backup.py")
    assert taken.returncode == 0, taken.stdout[-3000:]
    size = hosts.ssh(keeper(hosts), "du -sb /var/lib/pgbackrest | cut -f1").stdout.strip()

    from fleet import hosts as fleet_tool
    fleet_tool.replace(FLEET, 1, timeout=240)
    fresh = run("-y")
    assert fresh.returncode == 0, fresh.stdout[-4000:]
    assert "are of another cluster" in fresh.stdout, fresh.stdout[-3000:]
    assert notes(web(hosts)[0]) == set(), "a fresh db host starts with an empty database"

    started = time.monotonic()
    restored = run("-y", "--limit", db(hosts)["address"], deploy="restore.py")
    took = time.monotonic() - started
    assert restored.returncode == 0, restored.stdout[-3000:]
    print(f"\nrestore.py onto a fresh db host: {took:.1f} s (repository {size} bytes)")
    for host in web(hosts):
        assert notes(host) == kept
    again = run("-y")
    assert again.returncode == 0 and "are of another cluster" not in again.stdout, again.stdout[-3000:]
    later = run("-y", deploy="backup.py")
    assert later.returncode == 0, later.stdout[-3000:]


def test_a_damaged_repository_fails_the_verification_and_stops_a_deploy_that_would_migrate(hosts, deployed,
                                                                                          tmp_path):
    """A file of the latest backup damaged: the verification unit fails (systemctl --failed),
    status.py shows it, and a deploy that migrates stops before migrating, saying how to
    override."""
    full = [label for label in backups(hosts) if label.endswith("F")][-1]  # what the latest backup builds on
    hosts.ssh(keeper(hosts), f"f=$(find /var/lib/pgbackrest/backup/*/{full}/pg_data -type f -size +1k | sort | "
                             "tail -n 1) && [ -n \"$f\" ] && printf 'damage' | dd of=\"$f\" bs=1 seek=100 conv=notrunc "
                             "status=none")
    hosts.ssh(keeper(hosts), "systemctl start djdeploy-pgbackrest-verify.service", check=False, timeout=600)
    failed_units = hosts.ssh(keeper(hosts), "systemctl --failed --no-legend").stdout
    assert "djdeploy-pgbackrest-verify.service" in failed_units, failed_units
    status = run(deploy="status.py")
    assert "verified=FAILED" in status.stdout, status.stdout[-2000:]

    app = migrating_app(tmp_path / "adding", "0002_tag",
                        "migrations.AddField('note', 'tag', models.CharField(max_length=20, null=True))")
    refused = run("-y", cwd=app)
    assert refused.returncode != 0
    assert "migrate_without_backup=true" in refused.stdout, refused.stdout[-3000:]
