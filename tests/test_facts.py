"""Facts parsed from what a host answers (no host needed)."""

import subprocess

from djdeploy.ops.facts import Deployment, LockHolder, MissingPackages


def lock_holder_here(path) -> dict | None:
    """LockHolder's command run (with sh) on a real folder, parsed as pyinfra would."""
    fact = LockHolder()
    out = subprocess.run(["sh", "-c", fact.command(str(path))], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    return fact.process(lines) if lines else None


def test_the_lock_is_read_whole_by_one_fact(tmp_path):
    lock = tmp_path / ".deploy-lock"
    assert lock_holder_here(lock) is None  # free
    lock.mkdir()
    assert lock_holder_here(lock) == {"run": "", "owner": "", "since": ""}  # left empty by a killed deploy: held
    (lock / "run").write_text("5f2c9a1e0b7d4c3a\n")
    (lock / "owner").write_text("ci@build-7 pid 4242\n")
    (lock / "since").write_text("2026-11-28T03:00:00Z\n")
    assert lock_holder_here(lock) == {"run": "5f2c9a1e0b7d4c3a", "owner": "ci@build-7 pid 4242",
                                      "since": "2026-11-28T03:00:00Z"}


def test_releases_are_release_folders_only():
    """An archive still being unpacked, or left by a failed release, is not a release."""
    output = ["releases:", "0123456789ab", "ba9876543210.tar", ".new-ba9876543210"]
    state = Deployment().process(output)
    assert state["releases"] == ["0123456789ab"]


def test_the_current_releases_dependency_set():
    output = ["stat=current/venv 'current/venv' -> '../../venvs/df689afd86d7-py311'"]
    assert Deployment().process(output)["venv"] == "df689afd86d7-py311"


def test_missing_packages():
    fact = MissingPackages()
    fact.command(packages=["python3.11-venv", "curl", "sudo"])
    output = ["python3.11-venv curl sudo", "ii  sudo", "rc  curl"]  # curl removed, config left
    assert fact.process(output) == ["python3.11-venv", "curl"]
    assert fact.process(["python3.11-venv curl sudo", "ii  sudo", "ii  curl", "ii  python3.11-venv"]) == []
    assert fact.default() == ["python3.11-venv", "curl", "sudo"]  # no answer: nothing is assumed there


def test_where_a_socket_listens_tcp_or_unix(tmp_path):
    """What systemd and the app's main process both hold, as ss shows it: a TCP address
    (a host deployed before the unix socket) or the unix socket's path (ss -x prints a
    Netid column, u_str, before the state)."""
    import subprocess

    from djdeploy.ops.facts import SocketListens

    fact = SocketListens()
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "systemctl").write_text("#!/bin/sh\necho 42\n")
    for tcp, unix, want in (
            ('LISTEN 0 4096 127.0.0.1:8000 0.0.0.0:* users:(("gunicorn",pid=42,fd=3),("systemd",pid=1,fd=50))', "",
             ["127.0.0.1:8000"]),
            ("", 'u_str LISTEN 0 4096 /srv/shop/socket/gunicorn.sock 4162 * 0 users:(("gunicorn",pid=42,fd=5),'
                 '("systemd",pid=1,fd=59))', ["/srv/shop/socket/gunicorn.sock"])):
        (bin_ / "ss").write_text(f"#!/bin/sh\ncase \"$1\" in -Hltnp) echo '{tcp}' ;; -Hlxp) echo '{unix}' ;; esac\n")
        for tool in ("ss", "systemctl"):
            (bin_ / tool).chmod(0o755)
        out = subprocess.run(["bash", "-c", fact.command("shop.socket", "shop.service")], capture_output=True,
                             text=True, env={"PATH": f"{bin_}:/usr/bin:/bin"}).stdout.splitlines()
        assert fact.process(out) == want, out


def test_a_lock_left_empty_is_named_as_such_when_a_deploy_gives_up_waiting(tmp_path):
    """The lock's take command (run/lock.py), run by sh with no wait: an empty lock folder (a
    deploy killed between its mkdir and its writes) is one readable line, not "held by  since :"."""
    from djdeploy.run.lock import take_command

    lock = tmp_path / ".deploy-lock"
    lock.mkdir()
    out = subprocess.run(["sh", "-c", take_command(str(tmp_path), str(lock), 0)], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stdout.startswith("deploy lock held by an unknown deploy (its lock folder is empty) since an unknown "
                                 "time: wait for that deploy to end, or if it was killed: pyinfra inventory.py unlock.py")


def test_a_rollback_meets_only_migrations_the_current_release_knows_and_the_target_does_not():
    """Rows of a migration neither release knows (an app removed, another test's) do not
    stop a rollback; one the current release brought does, with the target's last of that
    app to run back to; the usual case (no Django start: release.sh compared the files)."""
    from djdeploy.ops.facts import MigrationsAhead

    fact = MigrationsAhead()
    assert fact.process(["listed"]) == {"unknown": [], "known": {}}
    assert fact.process([]) is None
    assert fact.process([
        "in target", "known notes.0001_initial", "known shop.0001_initial", "applied notes.0001_initial",
        "applied notes.0002_tag", "applied notes.0003_more", "applied gone.0001_initial", "leaf notes 0001_initial",
        "leaf shop 0001_initial", "in current", "known notes.0001_initial", "known notes.0002_tag", "listed",
    ]) == {"unknown": ["notes.0002_tag"], "known": {"notes": "0001_initial"}}
