"""A settled fleet is not planned (djdeploy/speed/settled.py): what it watches on a host, and
what on the controller makes a run a new one. The fleet side (one command per host, drift
still repaired) is in test_drift.py."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from djdeploy import SPEED

pytestmark = pytest.mark.skipif(not SPEED, reason="the speed-ups are off (DJDEPLOY_SPEED=off)")

ROOT = Path(__file__).resolve().parent.parent


def test_every_fact_a_web_host_asks_is_watched():
    """The facts the deploy asks of a web host each name what holds them; a fact that did not
    would keep the fleet from ever settling (planned every time: slow, never wrong)."""
    from pyinfra.facts.files import Directory, File, Sha1File
    from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

    from djdeploy.ops import facts
    from djdeploy.speed import settled

    asked = [
        (File, ["/srv/p/run"], {}), (Directory, [], {"path": "/srv/p"}), (Sha1File, ["/srv/p/run"], {}),
        (SystemdStatus, [], {"services": ["p.service"]}), (SystemdEnabled, [], {"services": "p.socket"}),
        (facts.HostPython, [], {}), (facts.LockHolder, [], {"path": "/srv/p/.deploy-lock"}),
        (facts.FrontApplied, [], {"front_dir": "/etc/caddy/djdeploy", "dropin": "/etc/systemd/system/c.conf"}),
        (facts.SocketListens, [], {"unit": "p.socket", "service": "p.service"}),
        (facts.MissingPackages, [], {"packages": ["curl"]}), (facts.Account, [], {"user": "web", "group": "web"}),
        (facts.NamedAcl, [], {"path": "/srv/p"}), (facts.DirectoryFiles, [], {"path": "/srv/p/wheels"}),
        (facts.FileText, [], {"path": "/srv/p/x"}), (facts.EnvFile, [], {"path": "/srv/p/shared/.env", "salt": "s"}),
        (facts.Deployment, [], {"root": "/srv/p", "config_files": ["/srv/p/run", "/etc/systemd/system/p.service"]}),
        (facts.ProjectProcessUnits, [], {"project": "p"}),
    ]
    for cls, args, kwargs in asked:
        assert settled.watched(cls, args, kwargs), cls.__name__
    plan = [[f"{cls.__module__}:{cls.__qualname__}", args, kwargs] for cls, args, kwargs in asked]
    command = settled.fingerprint_command(plan)
    assert command.startswith("{ LC_ALL=C stat") and "/var/lib/dpkg/status" in command and "/etc/passwd" in command
    assert "systemctl show" in command and "'p.service'" in command or "p.service" in command
    assert "/srv/p/current" in command and "/srv/p/.serving" in command  # the release and what serves
    # A folder the app writes in (Directory: shared/data, shared/media) is watched for what
    # files.directory decides from, not its times; one watched whole elsewhere stays whole.
    alone = settled.fingerprint_command([["pyinfra.facts.files:Directory", [], {"path": "/srv/p/shared/data"}]])
    assert "stat -c '%n %i %f %u %g' -- /srv/p/shared/data" in alone and "%.9Y" not in alone
    assert "%n %i %f %u %g" not in command  # /srv/p: a Directory, and the Deployment's root
    # What is not known (another fact, a path the shell would read as more than a path) is never settled.
    assert settled.fingerprint_command(plan + [["pyinfra.facts.server:Users", [], {}]]) is None
    assert settled.fingerprint_command([["pyinfra.facts.files:File", ["/srv/p/$(reboot)"], {}]]) is None


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the project and its inventory of fake hosts, for inputs_digest."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    from djdeploy.speed import settled

    copy = tmp_path / "project"
    for name in ("templates", "files", "group_data", "app"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    for name in ("deploy.py", "inventory.py"):
        shutil.copy(ROOT / name, copy / name)
    monkeypatch.setattr(settled, "RECORDS", tmp_path / "records")
    monkeypatch.setattr("sys.argv", ["pyinfra", "inventory.py", "deploy.py", "-y"])
    monkeypatch.setenv("DJDEPLOY_SECRETS_DIR", str(copy / "secrets"))
    (copy / "secrets").mkdir()
    (copy / "secrets" / "all.env").write_text("DATABASE_PASSWORD=first-password\n")
    monkeypatch.chdir(ROOT)
    ctx_state.set(State())
    inventory = make_inventory("tests/fake_inventory.py", cwd=str(ROOT))
    state = SimpleNamespace(inventory=inventory)  # what inputs_digest reads of a run
    monkeypatch.chdir(copy)

    def digest():
        from djdeploy.build import cache

        cache.forget()  # a new run: the app's tree is hashed again
        return settled.inputs_digest(state)

    return copy, inventory, digest


def test_what_a_deploy_decides_from_is_in_the_inputs(project, monkeypatch):
    """Code, data, the app, secrets and the environment each make a run a new one; the
    secrets enter as an HMAC under a key of this controller alone."""
    copy, inventory, digest = project
    first = digest()
    assert digest() == first  # the same inputs, the same digest
    monkeypatch.setenv("DJDEPLOY_COUNT_COMMANDS", "1")  # counting changes no decision
    assert digest() == first
    changes = [
        lambda: (copy / "templates" / "run.j2").write_text((copy / "templates" / "run.j2").read_text() + "# x\n"),
        lambda: (copy / "group_data" / "web.py").write_text((copy / "group_data" / "web.py").read_text() + "\n"),
        lambda: (copy / "app" / "project" / "views.py").write_text("# new code\n"),
        lambda: (copy / "secrets" / "all.env").write_text("DATABASE_PASSWORD=second-password\n"),
        lambda: monkeypatch.setenv("DJDEPLOY_SECRET_SOMETHING", "x"),
        lambda: monkeypatch.setenv("DJDEPLOY_SPEED_EXTRA", "x"),
        lambda: monkeypatch.setattr("sys.argv", ["pyinfra", "inventory.py", "deploy.py", "--data", "workers=3"]),
        lambda: setattr(next(iter(inventory)).data, "workers", 5),  # one host's data
    ]
    seen = {first}
    for index, change in enumerate(changes):
        change()
        now = digest()
        assert now not in seen, f"change {index} left the inputs as they were"
        seen.add(now)
    from djdeploy.speed import settled

    settled.write("app1", "deploy.py", digest(), "stat ...", "0" * 64)  # a record, as a run leaves it
    key = settled.RECORDS / "settled.key"
    assert key.stat().st_mode & 0o777 == 0o600
    text = json.dumps(sorted(p.read_text(errors="replace") for p in settled.RECORDS.iterdir() if p != key))
    assert "app1" not in text and "inputs" in text  # the record is there (named by a digest)
    assert "second-password" not in text and "first-password" not in text


def test_a_change_ends_the_batch_only_for_the_facts_that_read_what_it_touched():
    """After a command tagged with what it changes (djdeploy.shell.touching: the release's
    unpacking, a file's upload, the switch), the batch still answers the facts that read
    none of it; an untagged command ends every answer (djdeploy.speed.factcache)."""
    from pyinfra.facts.files import Directory, File, Sha1File
    from pyinfra.facts.systemd import SystemdStatus

    from djdeploy.ops import facts
    from djdeploy.shell import touching
    from djdeploy.speed import settled
    from djdeploy.speed.factcache import HostFacts, _key, _touched

    specs = {
        "unit file": (Sha1File, ["/etc/systemd/system/p.service"], {}),
        "front site": (Sha1File, ["/etc/caddy/djdeploy/sites/p"], {}),
        "run": (File, ["/srv/p/run"], {}),
        "release state": (facts.Deployment, [], {"root": "/srv/p", "config_files": ["/srv/p/run"]}),
        "releases folder": (Directory, [], {"path": "/srv/p/releases"}),
        "app unit": (SystemdStatus, [], {"services": ["p.service"]}),
        "timer": (SystemdStatus, [], {"services": ["p-job-a.timer"]}),
        "jobs": (facts.JobTimers, [], {"project": "p"}),  # reads no path it names: never kept
    }

    def batch():
        entry = HostFacts(SimpleNamespace(name="h"), "deploy.py")
        for name, (cls, args, kwargs) in specs.items():
            entry.values[_key(cls, args, kwargs)] = name
            entry.watches[_key(cls, args, kwargs)] = settled.watched(cls, args, kwargs)
        return entry

    def kept(entry):
        return sorted(entry.values.values())

    # The release unpacked and checked: everything under the project folder.
    entry = batch()
    entry.changing(_touched("run_shell_command", (touching("release.sh prepare x", "/srv/p"),), {}))
    assert kept(entry) == ["app unit", "front site", "timer", "unit file"] and entry.valid and entry.changed
    # The switch: the project folder, the files the app reads at start, the app's units.
    entry = batch()
    entry.changing(_touched("run_shell_command", (touching("release.sh switch x", "/srv/p",
                                                           "/etc/systemd/system/p.service", units=["p.service"]),), {}))
    assert kept(entry) == ["front site", "timer"]
    # An upload: its file, and the facts of the folders above it; not the file it will replace.
    entry = batch()
    entry.changing(_touched("put_file", ("/tmp/local", "/srv/p/run.next.part"), {}))
    assert kept(entry) == ["app unit", "front site", "releases folder", "run", "timer", "unit file"]
    # A staged file moved in beside its copies (.part, .next): the file itself is read again.
    assert settled.reads_under(settled.watched(File, ["/srv/p/run.next"], {}), (("/srv/p/run",), ()))
    # Anything else: no answer left.
    entry = batch()
    entry.changing(_touched("run_shell_command", ("systemctl daemon-reload",), {}))
    assert not entry.valid and entry.changed
    assert settled.reads_under(None, (("/x",), ()))
