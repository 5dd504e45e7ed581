"""files/backup.sh on this machine, against a local restic repository (the fleet test,
tests/test_backups.py, uses the backup host's over SFTP): an empty database or none is
nothing to back up, a damaged one is no backup, a good one restores whole, and a damaged
repository fails the verification, noted for status.py and the next migrating deploy."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT

@pytest.fixture
def site():
    """/tmp/<x>/{shared/data, shared/media, backup/}: the tool, its settings and a local
    repository; the app user is nobody."""
    assert shutil.which("restic"), "restic is not installed here: run `make deps` (Debian's restic)"
    top = Path(tempfile.mkdtemp(prefix="backup-tool-"))
    top.chmod(0o755)
    data, media, tool = top / "shared" / "data", top / "shared" / "media", top / "backup"
    for folder in (data, media, tool):
        folder.mkdir(parents=True)
    (top / "shared").chmod(0o755)
    for folder in (data, media):
        shutil.chown(folder, "nobody", "nogroup")
    shutil.copy(ROOT / "files" / "backup.sh", tool / "backup.sh")
    (tool / "password").write_text("a-long-enough-test-password\n")
    (tool / "backup.conf").write_text(
        f"PROJECT=p\nDATA={data}\nMEDIA={media}\nAPP_USER=nobody\nAPP_GROUP=nogroup\nUNITS=''\n"
        f"REPOSITORY={top}/repo\nSSH_COMMAND='ssh -o BatchMode=yes unused -s sftp'\nKEEP='--keep-daily 2'\n")
    assert tool_run(top, "init").returncode == 0
    yield top
    shutil.rmtree(top)


def tool_run(top: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(top / "backup" / "backup.sh"), *args], capture_output=True, text=True,
                          timeout=120)


def database(top: Path, rows: int, table: bool = True) -> Path:
    path = top / "shared" / "data" / "db.sqlite3"
    db = sqlite3.connect(path)
    if table:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.executemany("INSERT INTO notes (text) VALUES (?)", [(f"n{i}",) for i in range(rows)])
    db.commit()
    db.close()
    shutil.chown(path, "nobody", "nogroup")
    return path


def snapshots(top: Path) -> str:
    return subprocess.run(["restic", "-r", str(top / "repo"), "--password-file", str(top / "backup" / "password"),
                           "snapshots", "--json"], capture_output=True, text=True, check=True).stdout.strip()


def test_no_database_or_an_empty_one_is_nothing_to_back_up(site):
    nothing = tool_run(site, "take", "manual")
    assert (nothing.returncode, nothing.stdout.split(":")[0]) == (3, "nothing to back up yet"), nothing
    database(site, 0, table=False)
    empty = tool_run(site, "take", "manual")
    assert empty.returncode == 3 and "no SQLite database with a table" in empty.stdout, empty
    assert snapshots(site) == "[]"
    # and nothing to verify (the timer's unit takes 3 as success): no failure to show
    unverified = tool_run(site, "verify")
    assert unverified.returncode == 3 and unverified.stdout.startswith("nothing to verify yet"), unverified
    status = site / "backup" / "status"
    assert not status.exists() or "verify_failed" not in status.read_text()


def test_a_damaged_database_is_no_backup(site):
    path = database(site, 50)
    with open(path, "r+b") as f:  # the header stays; a page of the table does not
        f.seek(4096 + 100)
        f.write(b"\xff" * 2000)
    taken = tool_run(site, "take", "manual")
    assert taken.returncode == 1 and taken.stderr.startswith("backup: the copy of"), taken
    assert snapshots(site) == "[]"
    assert (site / "backup" / "status").read_text().startswith("take_failed ")


def test_a_backup_restores_whole_and_a_damaged_repository_fails_its_verification(site):
    database(site, 20)
    (site / "shared" / "media" / "photo.jpg").write_bytes(b"\x89 not really a photo")
    taken = tool_run(site, "take", "manual")
    assert taken.returncode == 0 and taken.stdout.startswith("snapshot "), taken
    verified = tool_run(site, "verify")
    assert verified.returncode == 0 and "1 database(s) whole" in verified.stdout, verified
    status = (site / "backup" / "status").read_text()
    assert status.startswith(f"backup {taken.stdout.split()[1]} ") and "\nverified " in status, status
    for pack in (site / "repo" / "data").rglob("*"):  # bytes changed inside, as a failing disk does
        if pack.is_file():
            pack.chmod(0o600)
            with open(pack, "r+b") as f:
                f.seek(40)
                f.write(b"damaged")
    failed = tool_run(site, "verify")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed
    assert failed.stderr.startswith(("backup: restic check found the repository damaged: error",
                                     "backup: snapshot ")), failed
    assert "\nverify_failed " in (site / "backup" / "status").read_text()


def test_a_table_name_with_a_quote_is_counted_and_a_foreign_counts_file_is_refused(site):
    """The app names its tables (a quote in one broke the count, and the backup); a snapshot's
    counts.json that names a file outside the snapshot makes root open nothing there."""
    backed_up_with(site, 'CREATE TABLE "odd""name" (x)', 'INSERT INTO "odd""name" VALUES (1)')

    stage = site / "forged"
    (stage / "data").mkdir(parents=True)
    outside = site / "outside.db"
    sqlite3.connect(outside).execute("CREATE TABLE t (x)").connection.close()
    (stage / "counts.json").write_text('{"../../outside.db": {"t": 1}}')
    script = subprocess.run(["bash", "-c", 'eval "$(sed -n "/^SQLITE=/,/^print(found)/p" "$0")"; printf %s "$SQLITE"',
                             str(site / "backup" / "backup.sh")], capture_output=True, text=True, check=True).stdout
    checked = subprocess.run(["python3", "-I", "-S", "-c", script, "check", "-", str(stage)], capture_output=True,
                             text=True)
    assert checked.returncode == 1
    assert checked.stderr.strip() == "counts.json names a file outside the snapshot: not a backup this tool made"


def test_a_table_with_a_json_check_is_backed_up(site):
    """Django's JSONField on SQLite is a CHECK (JSON_VALID(...)) in the schema (django-tasks'
    results table has one): the copy and the check must read such a schema."""
    backed_up_with(site, 'CREATE TABLE results (id INTEGER PRIMARY KEY, value TEXT '
                         'CHECK ((JSON_VALID("value") OR "value" IS NULL)))',
                   "INSERT INTO results (value) VALUES ('{\"a\": 1}')")


def backed_up_with(site, *statements: str) -> None:
    """The app's database with `statements` run on it is backed up, and the backup verified."""
    path = database(site, 2)
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    taken = tool_run(site, "take", "manual")
    assert taken.returncode == 0, taken
    verified = tool_run(site, "verify")
    assert verified.returncode == 0, verified


def test_uploads_alone_are_backed_up_counted_and_put_back(site):
    """A files host's settings (no DATA): an empty uploads folder is nothing to back up; a
    snapshot holds the uploads and their count, the verification checks it, and a restore
    puts them back with the folder's mode."""
    conf = site / "backup" / "backup.conf"
    conf.write_text(conf.read_text().replace(f"DATA={site}/shared/data", "DATA=''") + "MEDIA_MODE=2750\n")
    media = site / "shared" / "media"
    assert tool_run(site, "take", "manual").returncode == 3
    for n in range(3):
        (media / f"u{n}.txt").write_text(f"upload {n}\n")
    taken = tool_run(site, "take", "manual")
    assert taken.returncode == 0 and taken.stdout.startswith("snapshot "), taken
    verified = tool_run(site, "verify")
    assert verified.returncode == 0 and "3 upload(s), every file as taken" in verified.stdout, verified
    (media / "u0.txt").unlink()
    restored = tool_run(site, "restore")
    assert restored.returncode == 0, restored
    assert sorted(p.name for p in media.iterdir()) == ["u0.txt", "u1.txt", "u2.txt"]
    assert oct(media.stat().st_mode & 0o7777) == "0o2750" and media.owner() == "nobody"
