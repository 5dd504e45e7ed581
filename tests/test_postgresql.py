"""Web hosts behind one PostgreSQL database and one balancer: 1 db host, 3 web hosts (one
of them on Debian 13), 1 lb host, 1 files host (the uploads) and 1 backup host, in one run. Requests through the balancer reach every
web host and none fails through a redeploy, a rollback, a release that fails its health
gate or a web host powered off. Data written through one web host is read through the others;
migrations run once, under an advisory lock, listed by the dry run; a failing one leaves
every host on its release; redeploy, rollback and a reboot of the db host lose nothing;
pg_hba lets in the web hosts only; the role's password shows nowhere.

Then the backups (pgBackRest for the cluster, the backup host its repository host; restic
on the files host for the uploads): the first deploy makes the stanza and a full backup; a
deploy that migrates backs up first (the label in revisions.log), one that does not takes
none, and a migration that destroys rows is undone by restoring that backup; a point in
time between two writes comes back without the later one; a fresh db host in place of a
destroyed one gets every row back, and a fresh files host every upload; each host's key
runs pgBackRest's remote alone; a damaged repository fails the verification (systemctl
--failed, status.py) and stops the next deploy that would migrate. These run last: they
replace hosts."""

from __future__ import annotations

import datetime
import json
import re
import secrets
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import (PROJECT, LoadRun, Runs, app_version, broken_release, copy_project, note, notes, own_fleet, results,
                      upload_file, wait_http_200)

FLEET = "pgtest"
BACKUP_PASSWORD = secrets.token_urlsafe(24)
TOOL = "/usr/local/sbin/djdeploy-pgbackrest"
LABEL = r"[0-9]{8}-[0-9]{6}F(?:_[0-9]{8}-[0-9]{6}[DI])?"
MIGRATION = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.AddField("note", "tag", models.CharField(max_length=20, null=True))]
'''
FAILING = '''from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("this migration fails on purpose")


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_note_tag")]
    operations = [migrations.RunSQL("CREATE TABLE half_done (id int)"), migrations.RunPython(fail)]
'''


@pytest.fixture(scope="module")
def pg():
    with own_fleet(FLEET, 7, "bookworm,bookworm,bookworm,trixie,bookworm,bookworm,bookworm", timeout=240,
                   groups="db,web,web,web,lb,files,backup") as fleet:
        yield fleet


@pytest.fixture(scope="module")
def password():
    return secrets.token_urlsafe(24) + "%$@/"  # characters a URL must escape


@pytest.fixture(scope="module")
def runs(password):
    return Runs(password, FLEET, backup_password=BACKUP_PASSWORD)


@pytest.fixture(scope="module")
def deployed(pg, runs, tmp_path_factory):
    """The first deploy, from an empty build cache (a wheelhouse per Python), then no-ops."""
    cache = tmp_path_factory.mktemp("build-cache")
    started = time.monotonic()
    first = runs("-y", env={"DJDEPLOY_BUILD_CACHE": str(cache)})
    first_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-4000:]
    noops = []
    for _ in range(2):  # the first no-op learns the facts to batch; the second is the usual one
        started = time.monotonic()
        again = runs("-y", env={"DJDEPLOY_BUILD_CACHE": str(cache), "DJDEPLOY_COUNT_COMMANDS": "1"})
        noops.append((time.monotonic() - started, again))
    counts = dict(re.findall(r"remote commands: (\S+) (\d+)", noops[1][1].stdout))
    print(f"\n7-host fleet (1 db, 3 web, 1 lb, 1 files, 1 backup): first deploy {first_seconds:.1f} s, no-op redeploy "
          f"{noops[0][0]:.2f} s then {noops[1][0]:.2f} s; commands per host: {counts}")
    return {"first": first, "noops": noops, "cache": cache}


def ssh_argv(pg, host: dict, command: str) -> list[str]:
    """ssh to a fleet host as the fleet tool does, for a command with its own stdin or life."""
    from fleet.base import SSH_OPTIONS

    return ["ssh", "-i", pg.state["key"], *SSH_OPTIONS, f"root@{host['address']}", command]


def db_host(pg):
    return pg.by_group("db")[0]


def web_hosts(pg):
    return pg.by_group("web")


def balancer(pg):
    return pg.by_group("lb")[0]


def files_host(pg):
    return pg.by_group("files")[0]


def backup_host(pg):
    return pg.by_group("backup")[0]


def upload(host: dict, name: str, content: bytes) -> dict:
    """POST a file to the sample app's /files through `host` (multipart): its answer."""
    boundary = secrets.token_hex(8)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://{host['address']}/files", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        return json.loads(response.read())


def served(host: dict, url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(f"http://{host['address']}{url}", timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, b"", dict(error.headers)


def rotation(pg) -> dict[str, str]:
    """Each web host's status in the balancer, as HAProxy says it: {address: "UP"...}."""
    out = pg.ssh(balancer(pg), f"/etc/haproxy/djdeploy/balancer.sh servers {PROJECT}").stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def psql(pg, sql: str) -> str:
    """A query on the db host, as postgres over its local socket."""
    return pg.ssh(db_host(pg), f"runuser -u postgres -- psql -XAtq -d {PROJECT} -c {json.dumps(sql)}").stdout.strip()


def post_note(host: dict, text: str) -> dict:
    data = urllib.parse.urlencode({"text": text}).encode()
    with urllib.request.urlopen(f"http://{host['address']}/notes", data=data, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())


def read_notes(host: dict) -> list[str]:
    status, body = wait_http_200(f"http://{host['address']}/notes", timeout=60)
    assert status == 200, body
    return [n["text"] for n in json.loads(body)["notes"]]


def current(pg, host) -> str:
    return pg.ssh(host, f"basename $(readlink /srv/{PROJECT}/current)").stdout.strip()


def migrated_lines(pg) -> dict[str, list[str]]:
    return {h["machine"]: [line for line in pg.ssh(h, f"cat /srv/{PROJECT}/revisions.log").stdout.splitlines()
                           if "migrated" in line] for h in web_hosts(pg)}


def test_first_deploy_serves_debian_12_and_13_from_one_database(pg, deployed):
    first = deployed["first"].stdout
    # One wheelhouse per Python in the fleet, psycopg's binary wheel in each.
    assert "Building the wheelhouse for Python 3.11" in first and "Building the wheelhouse for Python 3.13" in first
    wheels = sorted(p.name for p in Path(deployed["cache"], "wheels").glob("*/psycopg_binary-*.whl"))
    assert any("cp311" in w for w in wheels) and any("cp313" in w for w in wheels), wheels
    for host, release, python in zip(web_hosts(pg), ("12", "12", "13"), ("3.11", "3.11", "3.13")):
        assert pg.ssh(host, "cat /etc/debian_version").stdout.startswith(release)
        venv = pg.ssh(host, f"/srv/{PROJECT}/current/venv/bin/python -c 'import sys, psycopg; "
                            "print(\"%d.%d\" % sys.version_info[:2], psycopg.pq.__impl__)'").stdout.split()
        assert venv == [python, "binary"], venv
        assert wait_http_200(f"http://{host['address']}/healthz", timeout=60)[0] == 200
    # The database server: PostgreSQL running, not the app.
    db = db_host(pg)
    assert pg.ssh(db, "systemctl is-active postgresql; systemctl is-enabled postgresql").stdout.split() == ["active", "enabled"]
    assert pg.ssh(db, f"test -e /srv/{PROJECT}", check=False).returncode != 0
    # The server was ready (role, database, pg_hba) before any web host migrated.
    started = re.findall(r"--> Starting operation: (.+?)\s*$", first, re.M)
    server_ops = [i for i, name in enumerate(started) if name.startswith("PostgreSQL for the web hosts")]
    assert server_ops and max(server_ops) < started.index("Migrations"), started
    # The web hosts served nothing yet: they switched together, in one operation without
    # batches (below the balancer, whose rule that a batch leaves a host serving is for
    # hosts that serve), and none in the rolling one.
    rows = results(first)
    assert rows["First switch, together"]["changed"] == 3 and "Switch to the release" not in rows, first[-3000:]
    # Migrated once: by the first web host only, each migration recorded once.
    assert [len(lines) for lines in migrated_lines(pg).values()] == [1, 0, 0]
    assert psql(pg, "SELECT count(*) FROM django_migrations WHERE app = 'notes' AND name = '0001_initial'") == "1"


def test_a_second_run_changes_nothing_in_one_command_per_host(pg, deployed):
    for _, run in deployed["noops"]:
        assert run.returncode == 0, run.stdout[-3000:]
        assert results(run.stdout)["Grand total"]["changed"] == 0
    counts = dict(re.findall(r"remote commands: (\S+) (\d+)", deployed["noops"][1][1].stdout))
    assert {host: int(n) for host, n in counts.items()} == {h["address"]: 1 for h in pg.hosts}


def test_a_row_written_through_one_web_host_is_read_through_every_other(pg, deployed):
    texts = {}
    for host in web_hosts(pg):
        texts[host["machine"]] = f"from {host['machine']} {secrets.token_hex(4)}"
        assert post_note(host, texts[host["machine"]])["written_by"] == host["machine"]
    for host in web_hosts(pg):
        assert set(texts.values()) <= set(read_notes(host)), host["machine"]


def shell_on(pg, host: dict, code: str) -> str:
    """Python run by the project's manage.py shell on `host`, as the app user, with its .env."""
    command = (f"cd /srv/{PROJECT}/current && runuser -u web -- bash -c 'set -a; . /srv/{PROJECT}/shared/.env; "
               f"set +a; exec venv/bin/python manage.py shell -c \"$0\"' {shlex.quote(code)}")
    return pg.ssh(host, command, timeout=90).stdout.strip().splitlines()[-1]


def test_a_session_made_through_one_web_host_holds_on_every_other(pg, deployed, runs):
    """One site on three hosts: the first web host made the SECRET_KEY, and the others have
    the same one, copied through the controller's memory. A session (Django's signed-cookie
    sessions: the whole session in a cookie signed with the key) and a signed value made
    through one host are read by the others; the key shows in no output of the runs, and a host whose key was replaced by
    hand gets the site's back at the next deploy."""
    webs = web_hosts(pg)
    keys = {pg.ssh(h, f"sha256sum /srv/{PROJECT}/shared/secret_key").stdout.split()[0] for h in webs}
    assert len(keys) == 1, keys
    assert {pg.ssh(h, f"stat -c '%U %G %a' /srv/{PROJECT}/shared/secret_key").stdout.strip() for h in webs} == {"root web 640"}
    made = shell_on(pg, webs[0], "from django.contrib.sessions.backends.signed_cookies import SessionStore; "
                                 "from django.core import signing; s = SessionStore(); s['who'] = 'alice'; s.save(); "
                                 "print(s.session_key, signing.dumps('signed by one host'))").split()
    for host in webs[1:]:
        read = shell_on(pg, host, "from django.contrib.sessions.backends.signed_cookies import SessionStore; "
                                  f"from django.core import signing; print(SessionStore('{made[0]}').get('who'), "
                                  f"signing.loads('{made[1]}'))")
        assert read == "alice signed by one host", (host["machine"], read)
    key = pg.ssh(webs[0], f"cat /srv/{PROJECT}/shared/secret_key").stdout.strip()
    assert len(key) >= 50
    # A key replaced by hand on the second host: the next deploy gives it the site's back.
    pg.ssh(webs[1], f"echo not-the-sites > /srv/{PROJECT}/shared/secret_key")
    again = runs("-y")
    assert again.returncode == 0, again.stdout[-3000:]
    assert results(again.stdout)["Shared secret key"]["changed"] == 1
    assert pg.ssh(webs[1], f"cat /srv/{PROJECT}/shared/secret_key").stdout.strip() == key
    assert shell_on(pg, webs[1], f"from django.core import signing; print(signing.loads('{made[1]}'))") == \
        "signed by one host"
    for what, output in runs.outputs:
        assert key not in output, f"the SECRET_KEY is in the output of {what}"


def test_a_key_rotation_logs_nobody_out(pg, deployed, runs):
    """secret_key_version raised by one: every host of the site gets one new key, and the
    one before stays in SECRET_KEY_FALLBACKS, so a session signed before still holds on
    every host; a lower version later never brings the old key back."""
    webs = web_hosts(pg)
    key_sums = lambda: {pg.ssh(h, f"sha256sum /srv/{PROJECT}/shared/secret_key").stdout.split()[0] for h in webs}
    before = key_sums()
    made = shell_on(pg, webs[0], "from django.contrib.sessions.backends.signed_cookies import SessionStore; "
                                 "s = SessionStore(); s['who'] = 'bob'; s.save(); print(s.session_key)")
    rotated = runs("-y", "--data", "secret_key_version=2")
    assert rotated.returncode == 0, rotated.stdout[-3000:]
    after = key_sums()
    assert len(after) == 1 and after != before, (before, after)
    for host in webs:
        read = shell_on(pg, host, "from django.contrib.sessions.backends.signed_cookies import SessionStore; "
                                  f"print(SessionStore('{made}').get('who'))")
        assert read == "bob", (host["machine"], read)
    again = runs("-y")  # the data's version back to 1: the key stays
    assert again.returncode == 0 and results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-3000:]
    assert key_sums() == after


def test_status_shows_the_database_server_and_every_web_host(pg, deployed, runs):
    result = runs("-y", deploy="status.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert (f"{db_host(pg)['address']}: database server postgresql=active "
            f"databases={PROJECT} (3 web hosts)") in result.stdout
    for host in web_hosts(pg):
        line = next(l for l in result.stdout.splitlines() if l.strip().startswith(f"{host['address']}: current="))
        assert "unit=active" in line and "health=200" in line and "lock=free" in line


def test_postgresql_listens_for_the_web_hosts_and_lets_in_nobody_else(pg, deployed, password):
    db = db_host(pg)
    listening = sorted(set(re.findall(r"(\S+):5432\s", pg.ssh(db, "ss -ltnH").stdout)))
    assert listening == sorted(["127.0.0.1", "[::1]", db["address"]]), listening
    # From this machine's namespace (169.254.N.1, not a web host), with the right password.
    refused = subprocess.run(
        ["psql", f"host={db['address']} dbname={PROJECT} user={PROJECT} connect_timeout=5", "-c", "SELECT 1"],
        env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0
    machine_side = re.sub(r"\.2$", ".1", db["address"])
    assert f'no pg_hba.conf entry for host "{machine_side}", user "{PROJECT}"' in refused.stderr, refused.stderr
    hba = pg.ssh(db, "cat /etc/postgresql/*/main/pg_hba.conf").stdout
    ours = [line for line in hba.splitlines() if line.startswith(f"host {PROJECT} ")]
    assert ours == [f"host {PROJECT} {PROJECT} {h['address']}/32 scram-sha-256" for h in web_hosts(pg)]
    # The role's password is stored as a SCRAM verifier only.
    assert psql(pg, f"SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = '{PROJECT}'") == "SCRAM-SHA-256$"


def test_a_migration_runs_once_under_the_lock_and_the_dry_run_lists_it(pg, deployed, runs, tmp_path):
    from djdeploy.ops.postgresql import lock_key

    project = app_version(tmp_path / "v2", "v2")
    (project / "app/notes/migrations/0002_note_tag.py").write_text(MIGRATION)
    models = project / "app/notes/models.py"
    models.write_text(models.read_text() + "    tag = models.CharField(max_length=20, null=True)\n")
    before = [current(pg, h) for h in web_hosts(pg)]

    dry = runs("--dry", cwd=project)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert f"migrations for {PROJECT} on {db_host(pg)['address']}: notes.0002_note_tag" in dry.stdout
    assert psql(pg, "SELECT count(*) FROM django_migrations WHERE name = '0002_note_tag'") == "0"

    # Another deploy holds the project's migration lock: this one waits for it.
    key = lock_key(PROJECT)
    holder = subprocess.Popen(
        ssh_argv(pg, db_host(pg),
                 f"runuser -u postgres -- psql -XAtq -d {PROJECT} -c 'SELECT pg_advisory_lock({key}); SELECT pg_sleep(90)'"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        with ThreadResult(lambda: runs("-y", cwd=project)) as run:
            waited = False
            deadline = time.monotonic() + 90
            while not waited and time.monotonic() < deadline and run.thread.is_alive():
                waiting = psql(pg, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                                   f"WHERE l.locktype = 'advisory' AND NOT l.granted AND a.usename = '{PROJECT}'")
                if waiting == "1":
                    waited = True
                    assert psql(pg, "SELECT count(*) FROM django_migrations WHERE name = '0002_note_tag'") == "0"
                time.sleep(0.25)
            # The other deploy ends: its session, and with it its lock, goes.
            psql(pg, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
    finally:
        holder.wait(timeout=120)
    assert waited, "the migration did not wait for the advisory lock: " + run.value.stdout[-3000:]
    result = run.value
    assert result.returncode == 0, result.stdout[-3000:]
    assert psql(pg, "SELECT count(*) FROM django_migrations WHERE name = '0002_note_tag'") == "1"
    lines = migrated_lines(pg)
    assert [len(v) for v in lines.values()] == [2, 0, 0], lines
    after = {h["suite"]: set() for h in web_hosts(pg)}
    for h in web_hosts(pg):
        after[h["suite"]].add(current(pg, h))
    # One release per Python (a lock each: Debian 12's 3.11, Debian 13's 3.13), all of them new.
    assert all(len(ids) == 1 for ids in after.values()) and not set().union(*after.values()) & set(before), after
    # Nothing pending any more: the next run changes nothing, and migrates nothing.
    again = runs("-y", cwd=project)
    assert results(again.stdout)["Grand total"]["changed"] == 0
    assert "migrations for" not in again.stdout


def test_a_failing_migration_stops_the_deploy_before_any_host_switches(pg, deployed, runs, tmp_path):
    project = app_version(tmp_path / "v3", "v3")
    (project / "app/notes/migrations/0002_note_tag.py").write_text(MIGRATION)
    (project / "app/notes/migrations/0003_fails.py").write_text(FAILING)
    models = project / "app/notes/models.py"
    models.write_text(models.read_text() + "    tag = models.CharField(max_length=20, null=True)\n")
    before = [current(pg, h) for h in web_hosts(pg)]
    note = post_note(web_hosts(pg)[0], "before the failing migration")

    result = runs("-y", cwd=project)
    assert result.returncode != 0
    assert "failed its migrations" in result.stdout and "this migration fails on purpose" in result.stdout
    assert [current(pg, h) for h in web_hosts(pg)] == before
    # The migration's transaction was rolled back; every host still serves, with the data.
    assert psql(pg, "SELECT count(*) FROM django_migrations WHERE name = '0003_fails'") == "0"
    assert psql(pg, "SELECT to_regclass('half_done') IS NULL") == "t"
    for host in web_hosts(pg):
        assert "before the failing migration" in read_notes(host)
    assert note["id"]


def test_data_survives_a_redeploy_a_rollback_and_a_reboot_of_the_db_host(pg, deployed, runs, tmp_path):
    texts = [f"kept {secrets.token_hex(4)}" for _ in range(3)]
    for host, text in zip(web_hosts(pg), texts):
        post_note(host, text)
    project = app_version(tmp_path / "v4", "v4")
    (project / "app/notes/migrations/0002_note_tag.py").write_text(MIGRATION)
    models = project / "app/notes/models.py"
    models.write_text(models.read_text() + "    tag = models.CharField(max_length=20, null=True)\n")

    redeploy = runs("-y", cwd=project)
    assert redeploy.returncode == 0, redeploy.stdout[-3000:]
    for host in web_hosts(pg):
        assert set(texts) <= set(read_notes(host)), f"after the redeploy, {host['machine']}"

    rollback = runs("-y", cwd=project, deploy="rollback.py")
    assert rollback.returncode == 0, rollback.stdout[-3000:]
    for host in web_hosts(pg):
        assert set(texts) <= set(read_notes(host)), f"after the rollback, {host['machine']}"

    db = db_host(pg)
    booted = pg.ssh(db, "cat /proc/sys/kernel/random/boot_id").stdout
    pg.ssh(db, "systemctl reboot", check=False)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        result = pg.ssh(db, "cat /proc/sys/kernel/random/boot_id; systemctl is-active postgresql", check=False,
                        timeout=10)
        if result.returncode == 0 and result.stdout.split()[:1] != booted.split()[:1]:
            break
        time.sleep(0.5)
    assert result.stdout.split()[1:] == ["active"], result.stdout
    for host in web_hosts(pg):
        assert set(texts) <= set(read_notes(host)), f"after the db host rebooted, {host['machine']}"


def connects_from(pg, host: dict, password: str) -> subprocess.CompletedProcess:
    """A connection from a web host to the database as the project's role, through the app's
    own psycopg (a stock web host has no psql); the password goes over stdin, not into argv."""
    db = db_host(pg)
    code = ("import sys, psycopg; print(psycopg.connect(host=sys.argv[1], dbname=sys.argv[2], user=sys.argv[2], "
            "password=sys.stdin.readline().strip(), connect_timeout=5).execute('SELECT 1').fetchone()[0])")
    script = f"/srv/{PROJECT}/current/venv/bin/python -c {shlex.quote(code)} {db['address']} {PROJECT}"
    return subprocess.run(ssh_argv(pg, host, script), input=password + "\n", capture_output=True, text=True,
                          timeout=60)


def test_a_new_password_is_applied_to_the_role_and_every_web_host(pg, deployed, runs):
    web = web_hosts(pg)
    old, new = runs.password, secrets.token_urlsafe(24)
    assert connects_from(pg, web[0], old).stdout.strip() == "1"
    runs.earlier.append(old)
    runs.password = new
    rotated = runs("-y")
    assert rotated.returncode == 0, rotated.stdout[-3000:]
    assert "PostgreSQL: altered role my_awesome_project (password not shown)" in rotated.stdout
    assert results(rotated.stdout)[".env"]["changed"] == 3
    refused = connects_from(pg, web[1], old)
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr, refused.stderr
    assert connects_from(pg, web[2], new).stdout.strip() == "1"
    text = f"after the new password {secrets.token_hex(4)}"
    post_note(web[0], text)
    for host in web:
        assert text in read_notes(host)
    assert results(runs("-y").stdout)["Grand total"]["changed"] == 0


def test_the_database_password_shows_nowhere(pg, deployed, runs):
    for password in [runs.password, *runs.earlier]:
        shows_nowhere(pg, runs, password)
    # The backup password: in no output, and on no host but the backup host's pgBackRest.
    for what, output in runs.outputs:
        assert BACKUP_PASSWORD not in output, f"the backup password is in the output of {what}"
    for host in [*web_hosts(pg), db_host(pg), balancer(pg)]:
        held = pg.ssh(host, f"grep -rlF -e {json.dumps(BACKUP_PASSWORD)} /etc /srv /tmp /var/tmp /var/log /root "
                            "2>/dev/null || true").stdout.split()
        assert held == [], (host["machine"], held)
    key = pg.ssh(web_hosts(pg)[0], f"cat /srv/{PROJECT}/shared/secret_key").stdout.strip()
    for what, output in runs.outputs:  # --dry --diff -vvv --debug among them
        assert key not in output, f"the SECRET_KEY is in the output of {what}"


def shows_nowhere(pg, runs, password):
    quoted = urllib.parse.quote(password, safe="")
    if not any("--debug" in what for what, _ in runs.outputs):
        runs("--dry", "--diff", "-vvv", "--debug")
        runs(deploy="debug-inventory")
    for what, output in runs.outputs:
        assert password not in output and quoted not in output, f"the password is in the output of {what}"
    db = db_host(pg)
    found = pg.ssh(db, f"grep -rlF -e {json.dumps(password)} -e {json.dumps(quoted)} /etc /var/log /var/lib/postgresql "
                       "/tmp /var/tmp /root /home /srv 2>/dev/null || true").stdout.split()
    assert found == [], f"the password is in {found} on the db host"
    for host in [db, *web_hosts(pg)]:
        argv = pg.ssh(host, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '").stdout
        assert password not in argv and quoted not in argv, host["machine"]
    for host in web_hosts(pg):
        holders = pg.ssh(host, f"grep -rlF -e {json.dumps(quoted)} -e {json.dumps(password)} /etc /srv /tmp /var/tmp "
                               "/var/log /root /home 2>/dev/null || true").stdout.split()
        assert holders == ([f"/srv/{PROJECT}/shared/.env"] if password == runs.password else []), holders


class ThreadResult:
    """Run `function` in a thread for the length of a `with` block; `.value` after it."""

    def __init__(self, function):
        import threading

        self.function, self.value = function, None
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        self.value = self.function()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=600)
        return False


# Through the balancer, a steady load (4 clients, each pausing 50 ms between requests: about
# 70 a second) rather than the most the fleet takes: the other test files share this
# machine's 2 cores, and a 2-second window of failures would still show as about 140.
STEADY = 0.05


def test_the_balancer_spreads_requests_over_every_web_host(pg, deployed, runs):
    lb = balancer(pg)
    assert rotation(pg) == {h["address"]: "UP" for h in web_hosts(pg)}
    # Written through the balancer: each web host took some (round robin).
    writers = {post_note(lb, f"through the balancer {n}")["written_by"] for n in range(6)}
    assert writers == {h["machine"] for h in web_hosts(pg)}, writers
    # The balancer runs no app and is no database client; HAProxy takes requests from its
    # front only, on a socket Caddy alone reaches; only the front listens outside.
    assert pg.ssh(lb, f"test -e /srv/{PROJECT}", check=False).returncode != 0
    hba = pg.ssh(db_host(pg), "cat /etc/postgresql/*/main/pg_hba.conf").stdout
    assert lb["address"] not in hba
    socket = pg.ssh(lb, f"stat -c '%U:%G %a' /run/haproxy/djdeploy-{PROJECT}.sock").stdout.split()
    assert socket == ["root:caddy", "660"], socket
    listening = set(re.findall(r"\s(\S+):(\d+)\s", pg.ssh(lb, "ss -Hltn").stdout))
    assert {port for address, port in listening if not address.startswith(("127.", "[::1]"))} <= {"22", "80"}, listening
    # status.py: the balancer's line.
    result = runs("-y", deploy="status.py")
    servers = ",".join(f"{h['address']}:UP" for h in web_hosts(pg))
    assert f"{lb['address']}: balancer haproxy=active servers={servers}" in result.stdout, result.stdout[-2000:]


def test_a_visitor_logged_in_once_is_known_to_every_web_host_behind_the_balancer(pg, deployed):
    """One session cookie (signed with the site's one SECRET_KEY), made through the balancer
    by one web host, then 20 requests through it, spread over all three: every one knows
    the visitor."""
    import http.cookiejar

    lb = balancer(pg)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"http://{lb['address']}/session", data=b"who=alice", timeout=10) as response:
        assert json.loads(response.read())["who"] == "alice"
    seen = []
    for _ in range(20):
        with opener.open(f"http://{lb['address']}/session", timeout=10) as response:
            seen.append(json.loads(response.read()))
    assert {answer["who"] for answer in seen} == {"alice"}, seen
    assert {answer["read_by"] for answer in seen} == {h["machine"] for h in web_hosts(pg)}


@pytest.mark.parametrize("mode", ["socket", "ambient"])
def test_a_redeploy_and_a_rollback_through_the_balancer_fail_no_request(pg, deployed, runs, tmp_path, mode):
    """Under load through the balancer (a new connection per request), each web host is
    drained before its switch and put back after its health gate."""
    data = ["--data", f"listen={mode}"]
    if mode != "socket":
        assert runs("-y", *data).returncode == 0
    project = app_version(tmp_path / "lb", f"lb-{mode}")
    try:
        with LoadRun([f"http://{balancer(pg)['address']}/"], markers=[f"lb-{mode}"], pause=STEADY) as load:
            redeploy = runs("-y", *data, cwd=project)
            rollback = runs("-y", *data, cwd=project, deploy="rollback.py")
        assert redeploy.returncode == 0, redeploy.stdout[-3000:]
        assert rollback.returncode == 0, rollback.stdout[-3000:]
        print(f"\n{mode} mode, through the balancer: redeploy and rollback of 3 web hosts, "
              f"{load.result['requests']} requests, {load.result['failed']} failed, "
              f"{load.result['answers'].get(f'lb-{mode}', 0)} answered by the new release")
        assert load.result["requests"] >= 200 and load.result["failed"] == 0, load.result
        assert load.result["answers"].get(f"lb-{mode}", 0) > 0, load.result  # the new release served
        assert rotation(pg) == {h["address"]: "UP" for h in web_hosts(pg)}
    finally:
        if mode != "socket":
            assert runs("-y").returncode == 0


def test_a_release_that_fails_its_gate_is_out_of_the_balancer_and_serves_nobody(pg, deployed, runs, tmp_path):
    """The first web host to switch is drained, switches to a release whose health check
    fails, goes back, and stays out: no request through the balancer meets the broken
    release. The next deploy puts it back."""
    lb = balancer(pg)
    project = broken_release(tmp_path / "broken", "health")
    with LoadRun([f"http://{lb['address']}/healthz"], pause=STEADY) as load:
        broken = runs("-y", cwd=project)
    assert broken.returncode != 0
    assert "failed its health check" in broken.stdout, broken.stdout[-3000:]
    print(f"\na release failing its gate behind the balancer: {load.result['requests']} requests to "
          f"/healthz, {load.result['failed']} failed")
    assert load.result["requests"] >= 100 and load.result["failed"] == 0, load.result
    # Out: the host that failed (the first batch: one host), named in the run's error.
    states = rotation(pg)
    drained = [address for address, state in states.items() if state == "DRAIN"]
    assert len(drained) == 1 and sorted(states.values()) == ["DRAIN", "UP", "UP"], states
    assert re.search(rf"\[{re.escape(drained[0])}\].*failed its health check", broken.stdout), broken.stdout[-3000:]
    again = runs("-y")
    assert again.returncode == 0, again.stdout[-3000:]
    assert rotation(pg) == {h["address"]: "UP" for h in web_hosts(pg)}


def test_an_upload_through_any_web_host_is_served_through_the_balancer(pg, deployed):
    """Uploads go to the files host over SFTP, whichever web host took them; the balancer
    serves every one, with the headers uploads get (never run as a page)."""
    lb, store = balancer(pg), files_host(pg)
    sent = {}
    for n in range(6):  # through the balancer: every web host takes some
        content = f"upload {n} {secrets.token_hex(8)}\n".encode()
        answer = upload(lb, f"note-{n}.txt", content)
        sent[answer["url"]] = (content, answer["written_by"])
    for host in web_hosts(pg):  # and straight to each web host
        content = f"straight to {host['machine']}\n".encode()
        sent[upload(host, "direct.txt", content)["url"]] = (content, host["machine"])
    assert {by for _, by in sent.values()} == {h["machine"] for h in web_hosts(pg)}
    for url, (content, _) in sent.items():
        status, body, headers = served(lb, url)
        assert (status, body) == (200, content), url
        assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox" and headers[
            "X-Content-Type-Options"] == "nosniff", headers
    # On the files host, the account's, readable by its front alone; none on the web hosts.
    user = f"up-{PROJECT}"
    listing = pg.ssh(store, f"find /srv/uploads/{PROJECT}/media -type f -printf '%u:%g %m %P\\n'").stdout.split("\n")
    assert len([line for line in listing if line]) == len(sent), listing
    assert all(line.startswith(f"{user}:caddy 640 uploads/") for line in listing if line), listing
    for host in web_hosts(pg):
        assert pg.ssh(host, f"find /srv/{PROJECT}/shared/media -type f | wc -l").stdout.strip() == "0"
    # The account: SFTP only, from the app hosts only, the files host's key checked.
    key = pg.ssh(web_hosts(pg)[0], f"cat /srv/{PROJECT}/shared/uploads_key").stdout
    for host, said in ((web_hosts(pg)[0], "This service allows sftp connections only."), (lb, "")):
        pg.ssh(host, f"umask 077; printf '%s' {shlex.quote(key)} > /root/k")
        shell = pg.ssh(host, f"ssh -i /root/k -o BatchMode=yes -o StrictHostKeyChecking=no {user}@{store['address']} id; "
                             "rm -f /root/k", check=False)
        assert "uid=" not in shell.stdout and said in shell.stdout + shell.stderr, (host["machine"], shell)
        if not said:
            assert "Permission denied" in shell.stderr, shell.stderr
    assert pg.ssh(web_hosts(pg)[0], f"stat -c '%U:%G %a' /srv/{PROJECT}/shared/uploads_key").stdout.strip() == "root:web 640"
    known = pg.ssh(web_hosts(pg)[0], f"cat /srv/{PROJECT}/shared/uploads_known_hosts").stdout.split()
    assert known[:2] == [store["address"], "ssh-ed25519"]
    assert known[2] == pg.ssh(store, "cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub").stdout.strip()


def test_a_web_host_powered_off_costs_at_most_the_requests_in_flight(pg, deployed, runs):
    """Under load through the balancer, the last web host loses its power: HAProxy takes it
    out within seconds (its health check), and back once it booted again."""
    from fleet.hosts import poweroff, poweron

    lb, lost = balancer(pg), web_hosts(pg)[-1]
    number = pg.hosts.index(lost) + 1
    kept = upload(lost, "kept.txt", b"written by the host about to be lost\n")["url"]
    with LoadRun([f"http://{lb['address']}/"], pause=STEADY) as load:
        time.sleep(2)
        poweroff(FLEET, number)  # may wait for the fleet tool's lock (other fleets booting)
        cut = time.monotonic()
        try:
            while rotation(pg).get(lost["address"]) != "DOWN" and time.monotonic() - cut < 30:
                time.sleep(0.2)
            out_after = time.monotonic() - cut
            time.sleep(3)  # more requests, with the host out
            upload_served = served(lb, kept)[:2]
        finally:
            poweron(FLEET, number)
    print(f"\na web host powered off under load: out of the balancer after {out_after:.1f} s; "
          f"{load.result['requests']} requests, {load.result['failed']} failed {load.result['failures']}")
    assert out_after < 10, out_after
    assert upload_served == (200, b"written by the host about to be lost\n")  # the upload outlived it
    assert load.result["failed"] <= 4, load.result  # at most the load's 4 requests in flight
    back = time.monotonic()
    while rotation(pg).get(lost["address"]) != "UP" and time.monotonic() - back < 120:
        time.sleep(1)
    assert rotation(pg)[lost["address"]] == "UP"
    result = runs("-y")
    assert result.returncode == 0 and results(result.stdout)["Switch to the release"]["changed"] == 0, result.stdout[-3000:]


def test_a_web_host_lost_mid_run_is_named_then_the_fleet_goes_on_without_it_and_takes_it_back(pg, deployed, runs,
                                                                                                 tmp_path):
    """The last web host loses its power while a deploy unpacks its release: the run names
    it and the step in one line; the next run says how to go on without it, and with
    `without` the site moves to the release, the balancer's configuration leaving it out;
    once it is back, the next run brings it to that release and into the balancer."""
    from fleet.hosts import poweroff, poweron

    lb, lost = balancer(pg), web_hosts(pg)[-1]
    number = pg.hosts.index(lost) + 1
    project = app_version(tmp_path / "lost", "while-one-was-lost")
    releases = f"ls /srv/{PROJECT}/releases | wc -l"
    before = int(pg.ssh(lost, releases).stdout)
    with ThreadResult(lambda: runs("-y", cwd=project)) as run:
        deadline = time.monotonic() + 300
        while int(pg.ssh(lost, releases, check=False).stdout or 0) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        poweroff(FLEET, number)
    try:
        assert run.value.returncode != 0
        named = [line for line in run.value.stdout.splitlines() if f"host {lost['address']} stopped answering" in line]
        assert len(named) == 1 and "--data without='[" in named[0], run.value.stdout[-4000:]
        print(f"\n{named[0]}")
        refused = runs("-y", cwd=project)
        assert refused.returncode != 0 and f"--data without='[\"{lost['address']}\"]'" in refused.stdout
        without = runs("-y", "--data", f"without=[\"{lost['address']}\"]", cwd=project)
        assert without.returncode == 0, without.stdout[-3000:]
        assert f"going on without {lost['address']}" in without.stdout
        # The balancer's configuration leaves it out until a run reaches it again (it may come
        # back on its old release).
        assert lost["address"] not in rotation(pg) and len(rotation(pg)) == 2
        for _ in range(6):
            assert "while-one-was-lost" in wait_http_200(f"http://{lb['address']}/")[1]
    finally:
        poweron(FLEET, number)
    back = runs("-y", cwd=project)
    assert back.returncode == 0, back.stdout[-3000:]
    assert "while-one-was-lost" in wait_http_200(f"http://{lost['address']}/")[1]  # on the fleet's release
    deadline = time.monotonic() + 60
    while rotation(pg)[lost["address"]] != "UP" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rotation(pg)[lost["address"]] == "UP"
    assert runs("-y").returncode == 0  # the sample app as the other tests have it


def pg_backups(pg) -> list[str]:
    """The stanza's backups, oldest first, as pgBackRest's info lists them."""
    out = pg.ssh(backup_host(pg), "runuser -u postgres -- pgbackrest --output=json info").stdout
    return [b["label"] for stanza in json.loads(out) for b in stanza.get("backup", [])]


def one_more_migration(target, name: str, operations: str):
    """A project copy whose notes app has one more migration (`operations`)."""
    copy_project(target)
    (target / "app" / "notes" / "migrations" / f"{name}.py").write_text(
        "from django.db import migrations, models\n\n\n"
        "def forget_notes(apps, schema_editor):\n    apps.get_model('notes', 'Note').objects.all().delete()\n\n\n"
        "def fail(apps, schema_editor):\n    raise RuntimeError('this migration fails on purpose')\n\n\n"
        "class Migration(migrations.Migration):\n    atomic = False\n"
        f"    dependencies = [('notes', '0001_initial')]\n    operations = [{operations}]\n")
    return target


def test_the_first_deploy_backs_up_the_cluster(pg, deployed, runs):
    """A stanza with a full backup from the first deploy, WAL archived to the backup host, the
    timers waiting there (the no-op stays one command per host: above); the db host holds no
    passphrase, the backup host's is root:postgres 0640, and the repository no plain row;
    the units the timers start succeed in their sandboxes."""
    assert len(pg_backups(pg)) >= 1
    # A segment PostgreSQL closed between archive_mode on and the stanza's creation (its
    # archive_timeout is 60 s, the first deploy longer) fails to push and is pushed again
    # once the stanza exists: archiving works when the last push came after the last failure.
    archiver = pg.ssh(db_host(pg), "runuser -u postgres -- psql -XAtq -d postgres -c "
                                    "'SELECT archived_count, last_archived_time >= coalesce(last_failed_time, "
                                    "last_archived_time) FROM pg_stat_archiver'").stdout.strip()
    archived, healthy = archiver.split("|")
    assert int(archived) > 0 and healthy == "t", archiver
    timers = pg.ssh(backup_host(pg), "systemctl is-active djdeploy-pgbackrest-take.timer "
                                      "djdeploy-pgbackrest-verify.timer").stdout.split()
    assert timers == ["active", "active"]
    marker = f"plain-{secrets.token_hex(6)}"
    note(web_hosts(pg)[0], marker)
    taken = runs("-y", deploy="backup.py")
    assert taken.returncode == 0, taken.stdout[-3000:]
    assert re.search(rf"\] backup {LABEL} restores: 1 database\(s\), \d+ tables, \d+ rows", taken.stdout), \
        taken.stdout[-3000:]
    mode = pg.ssh(backup_host(pg), "stat -c '%U:%G %a' /etc/pgbackrest/conf.d/cipher.conf").stdout.strip()
    assert mode == "root:postgres 640"
    found = pg.ssh(backup_host(pg), f"grep -rl -- {marker} /var/lib/pgbackrest; "
                                     "zstdcat -r /var/lib/pgbackrest/archive 2>/dev/null | grep -c -- " + marker,
                      check=False).stdout.split()
    assert found in (["0"], []), found
    on_db = pg.ssh(db_host(pg), f"grep -rl -- {BACKUP_PASSWORD} /etc /var/lib/postgresql/.ssh /srv 2>/dev/null; true")
    assert on_db.stdout.strip() == ""
    exposure = pg.ssh(backup_host(pg), "systemd-analyze security djdeploy-pgbackrest-verify.service "
                                        "| tail -n 1").stdout
    assert float(re.search(r"exposure level .*?: ([0-9.]+)", exposure).group(1)) <= 3.0, exposure
    # What the timers start, in their sandboxes: pgBackRest's backup and verification on the
    # backup host, the files host's backup of the uploads and its verification.
    for host, units in ((backup_host(pg), ("djdeploy-pgbackrest-take", "djdeploy-pgbackrest-verify")),
                        (files_host(pg), (f"{PROJECT}-backup", f"{PROJECT}-backup-verify"))):
        for unit in units:
            started = pg.ssh(host, f"systemctl start {unit}.service", check=False, timeout=600)
            assert started.returncode == 0, (unit, pg.ssh(host, f"journalctl -u {unit} -o cat | tail -n 5").stdout)
    status = pg.ssh(backup_host(pg), "cat /var/lib/pgbackrest/djdeploy-status").stdout
    assert re.search(rf"^backup {LABEL} \d+ \d+ scheduled$", status, re.M), status


def test_a_migration_is_backed_up_first_and_a_restore_undoes_what_it_destroyed(pg, deployed, runs, tmp_path):
    """A release that migrates backs up first (its label in revisions.log); one that does not
    takes no backup; a migration that deletes every row and then fails is undone by
    restore.py with that label; a rollback past a migration with rollback_data=restore puts
    the cluster back as the backup before it left it, the row written since gone."""
    before = pg_backups(pg)
    same = runs("-y")
    assert same.returncode == 0, same.stdout[-3000:]
    assert pg_backups(pg) == before, "a deploy without migrations takes no backup"

    for i in range(3):
        note(web_hosts(pg)[0], f"before-{i}")
    kept = notes(web_hosts(pg)[0])
    app = one_more_migration(tmp_path / "destroying", "0002_forget",
                        "migrations.RunPython(forget_notes), migrations.RunPython(fail)")
    failed = runs("-y", cwd=app)
    assert failed.returncode != 0, failed.stdout[-3000:]
    log = pg.ssh(web_hosts(pg)[0], f"cat /srv/{PROJECT}/revisions.log").stdout
    label = re.findall(rf"backed up before its migrations: snapshot ({LABEL})$", log, re.M)
    assert label, log[-2000:]
    assert notes(web_hosts(pg)[0]) == set(), "the migration deleted the rows (atomic = False) before it failed"

    preview = runs("--dry", "--limit", db_host(pg)["address"], "--data", f"backup={label[-1]}", deploy="restore.py")
    assert preview.returncode == 0, preview.stdout[-3000:]
    assert f"would restore the cluster as backup {label[-1]} left it" in preview.stdout, preview.stdout[-3000:]
    restored = runs("-y", "--limit", db_host(pg)["address"], "--data", f"backup={label[-1]}", deploy="restore.py")
    assert restored.returncode == 0, restored.stdout[-3000:]
    for host in web_hosts(pg):
        assert notes(host) == kept

    # A rollback past a migration, told to restore: the cluster as the backup before it left it.
    adding = one_more_migration(tmp_path / "adding", "0002_more",
                                "migrations.AddField('note', 'more', models.CharField(max_length=20, null=True))")
    migrated = runs("-y", cwd=adding)
    assert migrated.returncode == 0, migrated.stdout[-3000:]
    note(web_hosts(pg)[0], "after-the-migration")
    stopped = runs("-y", deploy="rollback.py")
    assert stopped.returncode != 0 and "notes.0002_more" in stopped.stdout, stopped.stdout[-3000:]
    back = runs("-y", "--data", "rollback_data=restore", deploy="rollback.py")
    assert back.returncode == 0, back.stdout[-3000:]
    assert "written since is lost" in back.stdout, back.stdout[-3000:]
    for host in web_hosts(pg):
        assert notes(host) == kept
    assert psql(pg, "SELECT count(*) FROM django_migrations WHERE name = '0002_more'") == "0"


def test_a_point_in_time_between_two_writes_comes_back_without_the_later_one(pg, deployed, runs):
    """Rows at t1, a time between, a row at t2, and no backup since: restore.py to that time
    keeps the t1 rows only; a row written just before restore.py of the latest is kept (the
    restore archives the WAL in place first)."""
    first = {f"t1-{i}" for i in range(2)}
    for text in first:
        note(web_hosts(pg)[0], text)
    time.sleep(2)
    between = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    time.sleep(2)
    note(web_hosts(pg)[1], "t2")
    assert first | {"t2"} <= notes(web_hosts(pg)[0])

    started = time.monotonic()
    restored = runs("-y", "--limit", db_host(pg)["address"], "--data", f"restore_to={between}", deploy="restore.py")
    print(f"\nrestore.py to a point in time: {time.monotonic() - started:.1f} s")
    assert restored.returncode == 0, restored.stdout[-3000:]
    after = notes(web_hosts(pg)[1])
    assert first <= after and "t2" not in after, after

    note(web_hosts(pg)[0], "t3")
    latest = runs("-y", "--limit", db_host(pg)["address"], deploy="restore.py")
    assert latest.returncode == 0, latest.stdout[-3000:]
    assert first | {"t3"} <= notes(web_hosts(pg)[1])


def test_each_hosts_key_runs_pgbackrests_remote_alone(pg, deployed, runs):
    """The db host's and the backup host's postgres keys let the other in for pgBackRest's
    remote of this stanza alone: a shell, another pgbackrest command (stanza-delete) or another
    path is refused and logged; the keys' files are root's."""
    stanza = db_host(pg)["address"].replace(".", "-")
    attempts = [
        (db_host(pg), backup_host(pg), ["id", f"pgbackrest --stanza={stanza} stanza-delete --force",
                                     f"pgbackrest --stanza={stanza} --repo1-path=/var/lib/postgresql --process=0 "
                                     "--remote-type=repo --repo=1 archive-push:remote"]),
        (backup_host(pg), db_host(pg), ["bash -i", f"pgbackrest --stanza={stanza} --pg1-path=/var/lib/postgresql "
                                                "--process=0 --remote-type=pg --pg=1 backup:remote"]),
    ]
    for source, target, commands in attempts:
        for command in commands:
            out = pg.ssh(source, f"runuser -u postgres -- ssh -o BatchMode=yes postgres@{target['address']} "
                                    f"{shlex.quote(command)} < /dev/null", check=False)
            assert out.returncode != 0 and "only pgBackRest's remote" in out.stderr, (command, out)
        logged = pg.ssh(target, "journalctl -q -t djdeploy-pgbackrest -o cat").stdout
        assert logged.count("refused from") >= len(commands), logged
        owners = pg.ssh(target, "stat -c '%U:%G %a %n' /var/lib/postgresql/.ssh "
                                   "/var/lib/postgresql/.ssh/authorized_keys").stdout.split("\n")
        assert owners[0].startswith("root:postgres 750") and owners[1].startswith("root:root 644"), owners


def test_a_fresh_db_host_gets_every_row_back(pg, deployed, runs):
    """Rows, a backup; the db host destroyed and a fresh stock one in its place, deployed (an
    empty database; the deploy says the backups are another cluster's), then restore.py:
    every row is back, and backups go on."""
    for i in range(3):
        note(web_hosts(pg)[0], f"kept-{i}")
    kept = notes(web_hosts(pg)[0])
    taken = runs("-y", deploy="backup.py")
    assert taken.returncode == 0, taken.stdout[-3000:]
    size = pg.ssh(backup_host(pg), "du -sb /var/lib/pgbackrest | cut -f1").stdout.strip()

    from fleet import hosts as fleet_tool
    fleet_tool.replace(FLEET, pg.hosts.index(db_host(pg)) + 1, timeout=240)
    fresh = runs("-y")
    assert fresh.returncode == 0, fresh.stdout[-4000:]
    assert "are of another cluster" in fresh.stdout, fresh.stdout[-3000:]
    assert notes(web_hosts(pg)[0]) == set(), "a fresh db host starts with an empty database"

    started = time.monotonic()
    restored = runs("-y", "--limit", db_host(pg)["address"], deploy="restore.py")
    took = time.monotonic() - started
    assert restored.returncode == 0, restored.stdout[-3000:]
    print(f"\nrestore.py onto a fresh db host: {took:.1f} s (repository {size} bytes)")
    for host in web_hosts(pg):
        assert notes(host) == kept
    again = runs("-y")
    assert again.returncode == 0 and "are of another cluster" not in again.stdout, again.stdout[-3000:]
    later = runs("-y", deploy="backup.py")
    assert later.returncode == 0, later.stdout[-3000:]


def test_uploads_on_a_fresh_files_host_come_back(pg, deployed, runs):
    """An upload, a backup (the files host's restic snapshot beside pgBackRest's); the files
    host destroyed and a fresh one in its place, deployed (no upload), then restore.py: the
    upload is served again, the account's and the front's to read, as before."""
    content = f"an upload the backup keeps {secrets.token_hex(4)}\n".encode()
    url = upload_file(web_hosts(pg)[0], "kept.txt", content)
    assert served(balancer(pg), url)[:2] == (200, content)
    taken = runs("-y", deploy="backup.py")
    assert taken.returncode == 0, taken.stdout[-3000:]
    assert re.search(r"\] snapshot [0-9a-f]{8} restores: \d+ upload\(s\), every file as taken", taken.stdout), \
        taken.stdout[-3000:]
    assert re.search(rf"\] backup {LABEL} restores", taken.stdout), taken.stdout[-3000:]
    status_line = runs("-y", deploy="status.py")
    assert re.search(rf"{files_host(pg)['address']}: files host backup=[0-9a-f]{{8}}@", status_line.stdout), \
        status_line.stdout[-2000:]

    from fleet import hosts as fleet_tool
    fleet_tool.replace(FLEET, pg.hosts.index(files_host(pg)) + 1, timeout=240)
    fresh = runs("-y")
    assert fresh.returncode == 0, fresh.stdout[-4000:]
    assert served(balancer(pg), url)[0] == 404
    started = time.monotonic()
    restored = runs("-y", "--limit", files_host(pg)["address"], deploy="restore.py")
    print(f"\nrestore.py onto a fresh files host: {time.monotonic() - started:.1f} s")
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert served(balancer(pg), url)[:2] == (200, content)
    listing = pg.ssh(files_host(pg), f"stat -c '%U:%G %a' /srv/uploads/{PROJECT}/media; find /srv/uploads/{PROJECT}"
                                     "/media -type f -printf '%u:%g %m\\n'").stdout.split("\n")
    assert listing[0] == f"up-{PROJECT}:caddy 2750", listing
    assert all(line == f"up-{PROJECT}:caddy 640" for line in listing[1:] if line), listing


def test_a_damaged_repository_fails_the_verification_and_stops_a_deploy_that_would_migrate(pg, deployed, runs,
                                                                                          tmp_path):
    """A file of the latest backup damaged: the verification unit fails (systemctl --failed),
    status.py shows it, and a deploy that migrates stops before migrating, saying how to
    override."""
    full = [label for label in pg_backups(pg) if label.endswith("F")][-1]  # what the latest backup builds on
    pg.ssh(backup_host(pg), f"f=$(find /var/lib/pgbackrest/backup/*/{full}/pg_data -type f -size +1k | sort | "
                             "tail -n 1) && [ -n \"$f\" ] && printf 'damage' | dd of=\"$f\" bs=1 seek=100 conv=notrunc "
                             "status=none")
    pg.ssh(backup_host(pg), "systemctl start djdeploy-pgbackrest-verify.service", check=False, timeout=600)
    failed_units = pg.ssh(backup_host(pg), "systemctl --failed --no-legend").stdout
    assert "djdeploy-pgbackrest-verify.service" in failed_units, failed_units
    status = runs(deploy="status.py")
    assert "verified=FAILED" in status.stdout, status.stdout[-2000:]

    app = one_more_migration(tmp_path / "adding", "0002_tag",
                        "migrations.AddField('note', 'tag', models.CharField(max_length=20, null=True))")
    refused = runs("-y", cwd=app)
    assert refused.returncode != 0
    assert "migrate_without_backup=true" in refused.stdout, refused.stdout[-3000:]
