"""Fast unit tests of the deploy's pure logic: no host, no fleet, no pyinfra run.

Facts are fed what their command prints (pyinfra's own fixture style: output lines in,
value out), and where the command can run here it does, so the fixtures stay true to
it. Operations are called through their undecorated body (`_inner`) with a stand-in
host that answers their facts, and their yielded commands are read. The lock's shell
runs in bash (and sh) in a temporary folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


def slug(text: str) -> str:
    """A test id without spaces or punctuation, to pass on a command line."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def sh(command: str, shell: str = "bash", timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run([shell, "-c", command], capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------------------
# rollout.batch_size: hosts per switch batch (pyinfra's _parallel)

@pytest.mark.parametrize("total, batch, expected", [
    # Default: one at a time above two hosts; two hosts or fewer switch together.
    (10, None, 1), (3, None, 1), (2, None, 2), (1, None, 1),
    (0, None, 1),  # an empty inventory still gets a valid _parallel
    # A count, never more than the hosts there are, never less than one.
    (5, "2", 2), (5, "5", 5), (3, "10", 3), (1, "4", 1), (0, "3", 1),
    # A share, rounded up, at least one host.
    (8, "25%", 2), (10, "25%", 3), (3, "25%", 1), (1, "50%", 1), (1000, "1%", 10),
    (7, "100%", 7), (0, "50%", 1), (4, "150%", 4),
])
def test_batch_size(total, batch, expected):
    from djdeploy.run.rollout import batch_size

    assert batch_size(total, batch) == expected


# ----------------------------------------------------------------------------------------
# Deployment fact: a project's release state, from one command

SERVING_HASH = "0f3c9a1e2b7d4c6a"

# pyinfra's fixture style: what the command prints -> what the fact returns.
DEPLOYMENT_FIXTURES = {
    "nothing deployed (no project folder: the command prints nothing)": {
        "output": None,  # pyinfra returns default() for no output
        "fact": {"current": None, "previous": None, "venv": None, "releases": [],
                 "serving": None, "config": None, "leftovers": []},
    },
    "folder made, nothing released yet": {
        "output": ["serving=",
                   "config=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 -"],
        "fact": {"current": None, "previous": None, "venv": None, "releases": [],
                 "serving": None, "config": "e3b0c44298fc1c14", "leftovers": []},
    },
    "two releases, serving the current one": {
        "output": [
            "stat=current 'current' -> 'releases/bbb222'",
            "stat=previous 'previous' -> '/srv/shop/releases/aaa111'",
            "stat=current/venv 'current/venv' -> '../../venvs/k2-py311'",
            f"serving=bbb222 {SERVING_HASH}",
            f"config={SERVING_HASH}9d2b77e1aa11c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ff -",
            "leftovers=/srv/shop/shared/.env.next /srv/shop/run.prev",
            "releases:", "aaa111", "bbb222", "ccc333.tar", ".new-ccc333",
        ],
        "fact": {"current": "bbb222", "previous": "aaa111", "venv": "k2-py311",
                 "releases": ["aaa111", "bbb222"],
                 "serving": f"bbb222 {SERVING_HASH}", "config": SERVING_HASH,
                 "leftovers": ["/srv/shop/shared/.env.next", "/srv/shop/run.prev"]},
    },
}


@pytest.mark.parametrize("case", DEPLOYMENT_FIXTURES, ids=[slug(k) for k in DEPLOYMENT_FIXTURES])
def test_deployment_fact_fixtures(case):
    from djdeploy.ops.facts import Deployment

    fixture = DEPLOYMENT_FIXTURES[case]
    fact = Deployment()
    got = fact.default() if fixture["output"] is None else fact.process(fixture["output"])
    assert got == fixture["fact"]


def make_project(root: Path) -> list[Path]:
    """A project folder as release.sh leaves it: two releases, links, venvs, an archive being
    unpacked, a hidden temporary release, the deploy lock; its config files."""
    for release, venv in (("aaa111", "k1-py311"), ("bbb222", "k2-py311")):
        (root / "releases" / release).mkdir(parents=True)
        (root / "venvs" / venv).mkdir(parents=True)
        (root / "releases" / release / "venv").symlink_to(f"../../venvs/{venv}")
    (root / "releases" / "ccc333.tar").write_bytes(b"partial")
    (root / "releases" / ".new-ccc333").mkdir()
    (root / "current").symlink_to("releases/bbb222")
    (root / "previous").symlink_to(root / "releases" / "aaa111")  # absolute works too
    lock = root / ".deploy-lock"
    lock.mkdir()
    (lock / "run").write_text("5f2c9a1e0b7d4c3a\n")
    (lock / "owner").write_text("ci@build-7 pid 4242\n")
    (lock / "since").write_text("2026-11-28T03:00:00Z\n")
    (root / "shared").mkdir()
    configs = [root / "shared" / ".env", root / "gunicorn.conf.py", root / "not-written-yet.conf"]
    configs[0].write_text('PORT="80"\n')
    configs[1].write_text("workers = 2\n")
    return configs


def deployment_here(root: Path, configs) -> dict:
    from djdeploy.ops.facts import Deployment

    fact = Deployment()
    out = sh(fact.command(str(root), [str(c) for c in configs]), shell="sh")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    return fact.process(lines) if lines else fact.default()


def test_deployment_fact_reads_what_its_command_prints_here(tmp_path):
    """The fixtures' shape is the command's: run it (with sh) on a real project folder."""
    root = tmp_path / "srv" / "shop"
    configs = make_project(root)
    serving = root / ".serving"
    serving.write_text(f"bbb222 {SERVING_HASH}\n")
    os.utime(serving, (1700000300, 1700000300))
    config = hashlib.sha256(b'PORT="80"\nworkers = 2\n').hexdigest()[:16]  # missing files add nothing
    (root / "gunicorn.conf.py.next").write_text("workers = 3\n")  # left by a run that stopped

    assert deployment_here(root, configs) == {
        "current": "bbb222", "previous": "aaa111", "venv": "k2-py311",
        "releases": ["aaa111", "bbb222"],
        "serving": f"bbb222 {SERVING_HASH}", "config": config,
        "leftovers": [str(root / "gunicorn.conf.py.next")],
    }
    # No project folder: nothing printed, pyinfra's default.
    assert deployment_here(tmp_path / "nowhere", configs)["releases"] == []
    assert deployment_here(tmp_path / "nowhere", configs)["current"] is None


def shell_function(name: str) -> str:
    """A function of files/release.sh, as its text (to run it alone)."""
    text = (ROOT / "files" / "release.sh").read_text()
    found = re.search(rf"^{name}\(\) \{{.*?^\}}", text, re.M | re.S)
    if not found:
        pytest.fail(f"files/release.sh has no function {name}()")
    return found.group(0)


def test_what_the_app_was_started_with_matches_the_fact_until_a_config_file_changes(tmp_path):
    """release.sh records "<release> <config hash>" when it starts the app (.serving); the
    Deployment fact hashes the same files the same way. Equal: no restart owed. A config
    file changed since: they differ (current_release then switches, below)."""
    root = tmp_path / "shop"
    configs = make_project(root)
    files = " ".join(str(c) for c in configs)
    started = sh(f"{shell_function('config_hash')}\n{shell_function('serving')}\nROOT={root} CONFIG_FILES='{files}'; serving bbb222")
    assert started.returncode == 0, started.stderr

    state = deployment_here(root, configs)
    assert state["serving"] == f"bbb222 {state['config']}"

    configs[0].write_text('PORT="8080"\n')
    changed = deployment_here(root, configs)
    assert changed["serving"] == state["serving"] and changed["config"] != state["config"]
    assert changed["serving"] != f"bbb222 {changed['config']}"


# ----------------------------------------------------------------------------------------
# Account fact: the app's group and user from getent

ACCOUNT_FIXTURES = {
    "group and user there": (
        ["web:x:998:", "web:x:998:998::/srv/my_awesome_project:/usr/sbin/nologin", "web"],
        {"group": "998", "user": {"uid": "998", "gid": "998", "home": "/srv/my_awesome_project",
                                  "shell": "/usr/sbin/nologin", "group": "web"}}),
    "group with members, user in another primary group": (
        ["web:x:998:alice,bob", "web:x:1001:100:Web,,,:/home/web:/bin/bash", "users"],
        {"group": "998", "user": {"uid": "1001", "gid": "100", "home": "/home/web", "shell": "/bin/bash",
                                  "group": "users"}}),
    "group only": (["web:x:998:"], {"group": "998", "user": None}),
    "user only": (["web:x:1001:1001::/home/web:/bin/sh", "web"],
                  {"group": None, "user": {"uid": "1001", "gid": "1001", "home": "/home/web",
                                           "shell": "/bin/sh", "group": "web"}}),
}


@pytest.mark.parametrize("case", ACCOUNT_FIXTURES, ids=[slug(k) for k in ACCOUNT_FIXTURES])
def test_account_fact_fixtures(case):
    from djdeploy.ops.facts import Account

    output, fact = ACCOUNT_FIXTURES[case]
    assert Account().process(output) == fact


def test_account_fact_when_neither_exists_and_as_its_command_prints_here():
    from djdeploy.ops.facts import Account

    # Neither there: getent and id print nothing, so pyinfra gives the default.
    missing = sh(Account().command("djdeploy-no-such-user", "djdeploy-no-such-group"), shell="sh")
    assert missing.stdout == ""
    assert Account().default() == {"group": None, "user": None}
    # root exists everywhere: the real command's lines parse into root's account.
    out = sh(Account().command("root", "root"), shell="sh").stdout.splitlines()
    assert Account().process(out) == {"group": "0", "user": {
        "uid": "0", "gid": "0", "home": "/root", "shell": out[1].split(":")[6], "group": "root"}}
    assert out[1].startswith("root:") and out[1].count(":") == 6


# ----------------------------------------------------------------------------------------
# Operations, called without a host: a stand-in answers their facts

class StandInHost:
    """What an operation asks of `pyinfra.host`: facts (by class), the run's stage, a prefix."""

    def __init__(self, facts: dict, executing: bool = False):
        self.facts = facts
        self.asked: list = []
        self.state = SimpleNamespace(is_executing=executing)
        self.print_prefix = "[stand-in] "
        self.name = "stand-in"

    def get_fact(self, fact, **kwargs):
        self.asked.append(fact.__name__)
        return self.facts[fact]


@contextmanager
def on(stand_in):
    from pyinfra.context import ctx_host

    with ctx_host.use(stand_in):
        yield


def commands(operation, stand_in, *args, **kwargs) -> list[str]:
    with on(stand_in):
        return [str(c) for c in operation._inner(*args, **kwargs)]


def test_system_group_and_user_from_the_account_fact():
    from djdeploy.ops import system
    from djdeploy.ops.facts import Account

    def host_with(output):
        return StandInHost({Account: Account().process(output) if output else Account().default()})

    home, nologin = "/srv/my_awesome_project", "/usr/sbin/nologin"
    assert commands(system.system_group, host_with([]), "web", "web") == ["groupadd --system web"]
    assert commands(system.system_group, host_with(["web:x:998:"]), "web", "web") == []
    assert commands(system.system_user, host_with(["web:x:998:"]), "web", "web", home) == [
        f"useradd --system --no-create-home --home-dir {home} --shell {nologin} --gid web web"]
    right = ["web:x:998:", f"web:x:998:998::{home}:{nologin}", "web"]
    assert commands(system.system_user, host_with(right), "web", "web", home) == []
    wrong = ["web:x:998:", "web:x:1001:100::/home/web:/bin/bash", "users"]
    assert commands(system.system_user, host_with(wrong), "web", "web", home) == [
        f"usermod --home {home} --shell {nologin} --gid web web"]


# ----------------------------------------------------------------------------------------
# The restart decision: rollout.changed, current_release

def operation_meta(will_change: bool, ran: list | None = None, success: bool = True):
    """pyinfra's own OperationMeta: planned (will_change), or executed (`ran` commands)."""
    from pyinfra.api.operation import OperationMeta

    meta = OperationMeta("hash", will_change)
    if ran is not None:
        meta.set_complete(success, ran, None)
    return meta


def test_changed_asks_the_plan_before_and_the_outcome_after_execution():
    from djdeploy.run.rollout import changed

    assert changed(operation_meta(False), operation_meta(True))() is True
    assert changed(operation_meta(False), operation_meta(False))() is False
    assert changed()() is False
    # After execution the outcome counts, not the plan: planned a change but ran nothing.
    assert changed(operation_meta(True, ran=[]))() is False
    assert changed(operation_meta(False, ran=[]), operation_meta(True, ran=["cmd"]))() is True
    assert changed(operation_meta(True, ran=["cmd"], success=False))() is False  # failed: changed nothing
    # Asked when called, not when made: the `_if` of a later operation sees the outcome.
    later = operation_meta(True)
    check = changed(later)
    later.set_complete(True, [], None)
    assert check() is False


def switch_commands(settings, deployed, release="bbb222", executing=False, restart_if=None, rollback=False):
    from djdeploy.ops import releases
    from djdeploy.ops.facts import Deployment

    stand_in = StandInHost({Deployment: deployed}, executing=executing)
    return commands(releases.current_release, stand_in, settings, release, restart_if=restart_if,
                    rollback=rollback)


SERVING = DEPLOYMENT_FIXTURES["two releases, serving the current one"]["fact"]


RESTART_CASES = [
    ("serving as wanted, nothing changed", {}, {}, False),
    ("serving as wanted, no file will change", {}, {"restart_if": lambda: False}, False),
    ("another release is current", {}, {"release": "ccc333"}, True),
    ("nothing deployed yet", {"current": None, "serving": None}, {}, True),
    ("started with other config files", {"serving": "bbb222 ffffffffffffffff"}, {}, True),
    ("a run stopped before it restarted (no .serving)", {"serving": None}, {}, True),
    # A dry run: the files are not written yet, so their operations say whether they will be.
    ("planning, a file the app reads will change", {}, {"restart_if": lambda: True}, True),
    # Executing: a file waits for the switch (<name>.next); the host moves it in and decides
    # whether the app already runs it (release.sh restart_owed, proven in test_drift).
    ("executing, a file waits for the switch", {}, {"executing": True, "restart_if": lambda: True}, True),
    ("executing, no file changed", {}, {"executing": True, "restart_if": lambda: False}, False),
]


@pytest.mark.parametrize("what, deployed, call, switch", RESTART_CASES, ids=[slug(c[0]) for c in RESTART_CASES])
def test_current_release_switches_only_when_a_restart_is_owed(settings, what, deployed, call, switch):
    got = switch_commands(settings, {**SERVING, **deployed}, **call)
    release = call.get("release", "bbb222")
    if switch:
        assert len(got) == 1 and got[0].endswith(f"release.sh switch {release}"), got
    else:
        assert got == []


def test_a_rollback_switch_says_so(settings):
    got = switch_commands(settings, SERVING, release="aaa111", rollback=True)
    assert len(got) == 1 and got[0].endswith("release.sh switch aaa111 rollback"), got


# ----------------------------------------------------------------------------------------
# envfile: quoting, digests, and what a changed .env reports (names, never values)

NASTY = ['it\'s "quoted"', "$HOME ${PATH} $(id) `id`", "back\\slash\\\\ \\n \\\"", "end\\",
         "  spaces  ", "ünïcødé ✓", "a=b=c", "#not-a-comment", ""]


def test_quote_reads_back_byte_for_byte_in_bash(tmp_path):
    from djdeploy.config.envfile import quote

    env = tmp_path / ".env"
    env.write_text("".join(f"V{i}={quote(value)}\n" for i, value in enumerate(NASTY)))
    script = f"set -a; . {env}; " + "; ".join(f'printf "%s\\0" "$V{i}"' for i in range(len(NASTY)))
    out = subprocess.run(["bash", "-c", script], capture_output=True, env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split("\0")[:-1] == NASTY


def test_line_digests_name_each_line_and_depend_on_the_salt():
    from djdeploy.config.envfile import line_digests

    text = '# comment\nA="1"\nAPI_TOKEN="hunter2-secret"\n\nB="x=y"\n'
    digests = line_digests(text, "djdeploy-env:shop")
    assert [name for name, _ in digests] == ["#", "A", "API_TOKEN", "#", "B", "#"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", digest) for _, digest in digests)
    assert len({digest for _, digest in digests}) == 5  # the two empty lines are the same line
    assert "hunter2" not in repr(digests)
    assert line_digests(text, "djdeploy-env:shop") == digests
    other = line_digests(text, "djdeploy-env:blog")
    assert [n for n, _ in other] == [n for n, _ in digests]
    assert not {d for _, d in other} & {d for _, d in digests}  # salted per project


SECRET_OLD, SECRET_NEW, GONE = "old-s3cr3t-value", "new-s3cr3t-value", "removed-s3cr3t-value"


@pytest.mark.parametrize("before, after, expected", [
    ('# a\nA="1"\nT="x"\n', '# a\nA="1"\nT="x"\n', []),
    (f'A="1"\nT="{SECRET_OLD}"\nG="{GONE}"\n', f'A="1"\nT="{SECRET_NEW}"\nN="{SECRET_NEW}"\n',
     ["N: added", "T: changed", "G: removed"]),
    ('# one\nA="1"\n', '# two\nA="1"\n', ["comments or order changed"]),
    ('A="1"\nB="2"\n', 'B="2"\nA="1"\n', ["comments or order changed"]),
    ('A="1"\n', 'A="1"\n\n', ["comments or order changed"]),
    (f'OLD_NAME="{SECRET_OLD}"\n', f'NEW_NAME="{SECRET_OLD}"\n', ["NEW_NAME: added", "OLD_NAME: removed"]),
], ids=["unchanged", "added-changed-removed", "comment-changed", "order-changed", "blank-line-added", "key-renamed"])
def test_changes_name_keys_never_values(before, after, expected):
    from djdeploy.config.envfile import changes, line_digests

    salt = "djdeploy-env:shop"
    got = changes(line_digests(before, salt), line_digests(after, salt))
    assert got == expected
    for value in (SECRET_OLD, SECRET_NEW, GONE, "s3cr3t"):
        assert value not in " ".join(got)


def test_env_file_reports_names_and_sends_values_only_on_stdin(settings, monkeypatch):
    """The operation's log line and command text name the keys that change; the values go
    only into the command's stdin (never an argument, never a diff)."""
    from djdeploy.config.envfile import Secrets, file_digest, line_digests
    from djdeploy.ops import uploads
    from djdeploy.ops.facts import EnvFile, EnvFileLines

    logged = []
    monkeypatch.setattr(uploads, "logger", SimpleNamespace(info=logged.append))
    src = str(ROOT / "templates" / "env.j2")
    salt = f"djdeploy-env:{settings.project}"
    old_text = uploads.render_env(src, settings, Secrets(API_TOKEN=SECRET_OLD))

    def run(present_text, owner=("root", "web", "640")):
        logged.clear()
        facts = {EnvFile: None, EnvFileLines: None}
        if present_text is not None:
            facts = {EnvFile: {"owner": list(owner), "digest": file_digest(present_text, salt)},
                     EnvFileLines: line_digests(present_text, salt)}
        with on(StandInHost(facts)):
            return list(uploads.env_file._inner(settings, src, Secrets(API_TOKEN=SECRET_NEW)))

    new_text = uploads.render_env(src, settings, Secrets(API_TOKEN=SECRET_NEW))
    assert run(new_text) == [] and logged == []  # as wanted: nothing to do

    (command,) = run(old_text)
    assert logged == [f"[stand-in] .env: API_TOKEN: changed (restarts {settings.unit})"]
    assert SECRET_NEW not in str(command) and SECRET_OLD not in str(command)
    # Its digest, then the file, whole, on stdin.
    assert "".join(command.connector_arguments["_stdin"]) == file_digest(new_text, salt) + "\n" + new_text

    (command,) = run(None)
    assert logged == [f"[stand-in] .env: created (restarts {settings.unit})"]
    (command,) = run(new_text, owner=("root", "root", "600"))
    assert logged == [f"[stand-in] .env: owner or mode (root root 600) set to root web 640 "
                      f"(restarts {settings.unit})"]
    assert not any(s in " ".join(logged) for s in (SECRET_OLD, SECRET_NEW))


# ----------------------------------------------------------------------------------------
# The deploy lock's shell (take_command, unlock_command), run here

@pytest.fixture
def lock_paths(tmp_path):
    root = tmp_path / "it's a project"  # quoting: a space and a quote
    return root, root / ".deploy-lock"


def held_by(path: Path, run: str, owner: str = "alice@laptop pid 7", since: str = "2026-11-28T03:00:00Z"):
    path.mkdir(parents=True)
    (path / "run").write_text(run + "\n")
    (path / "owner").write_text(owner + "\n")
    (path / "since").write_text(since + "\n")


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_take_a_free_lock(lock_paths, shell):
    from djdeploy.run import lock

    root, path = lock_paths
    out = sh(lock.take_command(str(root), str(path), 5), shell=shell)
    assert out.returncode == 0, out.stderr
    assert (path / "run").read_text() == lock.RUN_ID + "\n"
    assert (path / "owner").read_text() == lock.OWNER + "\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", (path / "since").read_text())


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_a_held_lock_is_refused_naming_its_holder(lock_paths, shell):
    from djdeploy.run import lock

    root, path = lock_paths
    held_by(path, "cafe0000cafe0000")
    started = time.monotonic()
    out = sh(lock.take_command(str(root), str(path), 0), shell=shell)
    assert out.returncode == 1
    assert time.monotonic() - started < 0.9  # wait 0: no second try
    assert out.stdout.startswith("deploy lock held by alice@laptop pid 7 since 2026-11-28T03:00:00Z: ")
    assert (path / "run").read_text() == "cafe0000cafe0000\n"  # untouched


def test_a_held_lock_is_waited_for_up_to_wait_seconds(lock_paths):
    from djdeploy.run import lock

    root, path = lock_paths
    held_by(path, "cafe0000cafe0000")
    started = time.monotonic()
    out = sh(lock.take_command(str(root), str(path), 1))
    waited = time.monotonic() - started
    assert out.returncode == 1 and "deploy lock held by alice@laptop" in out.stdout
    assert 0.95 <= waited < 3, waited


def test_a_lock_released_while_waiting_is_taken(lock_paths):
    from djdeploy.run import lock

    root, path = lock_paths
    held_by(path, "cafe0000cafe0000")
    started = time.monotonic()
    freed = f"(sleep 0.3; rm -rf {shlex.quote(str(path))}) &"
    out = sh(f"{freed} {lock.take_command(str(root), str(path), 5)}; s=$?; wait; exit $s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - started < 4
    assert (path / "run").read_text() == lock.RUN_ID + "\n"


def test_a_stale_lock_is_cleared_only_for_its_own_run_id(lock_paths):
    from djdeploy.run import lock

    root, path = lock_paths
    held_by(path, "dead0000dead0000", owner=f"me@{lock.CONTROLLER} pid 999999")
    # Someone else's run holds it now: not cleared.
    out = sh(lock.take_command(str(root), str(path), 0, stale_run="0ther0000ther000"))
    assert out.returncode == 1 and "cleared" not in out.stdout.split()
    assert (path / "run").read_text() == "dead0000dead0000\n"
    # The killed run's: cleared and taken.
    out = sh(lock.take_command(str(root), str(path), 0, stale_run="dead0000dead0000"))
    assert out.returncode == 0, out.stdout
    assert out.stdout.splitlines() == ["cleared"]
    assert (path / "run").read_text() == lock.RUN_ID + "\n"


def test_release_gives_back_only_this_runs_lock(lock_paths):
    from djdeploy.run import lock

    root, path = lock_paths
    assert sh(lock.take_command(str(root), str(path), 0)).returncode == 0
    assert sh(lock.unlock_command(str(path))).returncode == 0
    assert not path.exists() and root.is_dir()
    assert sh(lock.unlock_command(str(path))).returncode == 0  # nothing held: nothing to do
    assert not path.exists()
    held_by(path, "cafe0000cafe0000")
    assert sh(lock.unlock_command(str(path))).returncode == 0
    assert (path / "run").read_text() == "cafe0000cafe0000\n"  # another deploy's: kept


# ----------------------------------------------------------------------------------------
# inventory: servers.toml and how pyinfra was started

GROUPS = ["db", "staging", "web"]


def servers(tmp_path, text: str) -> Path:
    path = tmp_path / "servers.toml"
    path.write_text(text)
    return path


def test_a_servers_file(tmp_path, monkeypatch):
    from djdeploy.inventory import from_servers_file

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_deploy").write_text("key")
    path = servers(tmp_path, '[ssh]\nuser = "deploy"\nkey = "~/.ssh/id_deploy"\nport = 2222\n'
                             'known_hosts_file = "/dev/null"\nstrict_host_key_checking = "off"\n\n'
                             '[web]\nhosts = ["app1.example.com", "app2.example.com"]\n\n'
                             '[staging]\nhosts = ["staging.example.com"]\n')
    ssh = {"ssh_user": "deploy", "ssh_key": str(tmp_path / ".ssh" / "id_deploy"), "ssh_port": 2222,
           "ssh_known_hosts_file": "/dev/null", "ssh_strict_host_key_checking": "off"}
    inventory = from_servers_file(path, GROUPS)
    assert inventory == {"web": [("app1.example.com", ssh), ("app2.example.com", ssh)],
                         "staging": [("staging.example.com", ssh)]}
    # Each host its own data (pyinfra may change one host's).
    assert inventory["web"][0][1] is not inventory["web"][1][1]
    # No [ssh]: no SSH data, pyinfra's and the SSH config's defaults.
    assert from_servers_file(servers(tmp_path, '[web]\nhosts = ["a"]\n'), GROUPS) == {"web": [("a", {})]}
    # A host may carry data of its own, over its group's, beside the [ssh] data.
    per_host = from_servers_file(servers(tmp_path, '[ssh]\nport = 2222\n[web]\nhosts = ["a", { name = "b", '
                                                   'allowed_hosts = ["www.example.com"], app_env = { SITE = "b" } }]\n'),
                                 GROUPS)
    assert per_host == {"web": [("a", {"ssh_port": 2222}), ("b", {"ssh_port": 2222, "allowed_hosts": ["www.example.com"],
                                                                   "app_env": {"SITE": "b"}})]}


@pytest.mark.parametrize("text, message", [
    ('[prod]\nhosts = ["a"]\n', "unknown group [prod]: the groups are db, staging, web"),
    ('[ssh]\npassword = "x"\n[web]\nhosts = ["a"]\n', "unknown [ssh] key 'password': use user, key, port"),
    ('[ssh]\nport = "22"\n[web]\nhosts = ["a"]\n', "[ssh] port must be a int"),
    ('[ssh]\nport = true\n[web]\nhosts = ["a"]\n', "[ssh] port must be a int"),
    ('[ssh]\nuser = 1000\n[web]\nhosts = ["a"]\n', "[ssh] user must be a str"),
    ('[ssh]\nkey = "/nonexistent/id_ed25519"\n[web]\nhosts = ["a"]\n',
     "[ssh] key /nonexistent/id_ed25519 does not exist"),
    ('[ssh]\nuser = "deploy"\n', "no hosts: add a [web] section"),
    ("", "no hosts: add a [web] section"),
    ('[web]\nhosts = "app1"\n', '[web] needs hosts = ["name", ...]'),
    ('[web]\nhosts = ["app1", ""]\n', '[web] needs hosts = ["name", ...]'),
    ("[web]\n", '[web] needs hosts = ["name", ...]'),
    ('web = ["app1"]\n', '[web] needs hosts = ["name", ...]'),
    ("[web\nhosts = 1\n", "cannot read it"),
    ('[web]\nhosts = [{ port = 80 }]\n', '[web] needs hosts = ["name", ...]'),
    ('[web]\nhosts = ["-oProxyCommand=x"]\n', "[web] host '-oProxyCommand=x': not a host name"),
    ('[web]\nhosts = [{ name = "a b" }]\n', "[web] host 'a b': not a host name"),
], ids=["unknown-group", "unknown-ssh-key", "port-not-int", "port-a-bool", "user-not-str", "key-file-missing", "ssh-only",
        "empty", "hosts-not-a-list", "empty-host-name", "no-hosts-key", "group-not-a-table", "not-toml",
        "table-without-name", "option-as-host", "space-in-host"])
def test_a_bad_servers_file_is_one_line_naming_the_file(tmp_path, text, message):
    from djdeploy.inventory import InventoryError, from_servers_file

    path = servers(tmp_path, text)
    with pytest.raises(InventoryError) as error:
        from_servers_file(path, GROUPS)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_servers_file(tmp_path):
    from djdeploy.inventory import InventoryError, from_servers_file

    with pytest.raises(InventoryError, match=r"servers\.toml: cannot read it"):
        from_servers_file(tmp_path / "servers.toml", GROUPS)


@pytest.mark.parametrize("argv, environ, interactive, refused", [
    (["deploy.py"], {}, False, True),  # no terminal, no -y: pyinfra's question would hang
    (["deploy.py"], {}, True, False),  # a terminal answers
    (["-y", "deploy.py"], {}, False, False),
    (["deploy.py", "--yes"], {}, False, False),
    (["deploy.py", "--dry"], {}, False, False),
    (["-vy", "deploy.py"], {}, False, False),  # short flags combined, as pyinfra reads them
    (["-v", "deploy.py"], {}, False, True),
    (["--limit", "web", "deploy.py"], {}, False, True),
    (["deploy.py"], {"PYINFRA_YES": "1"}, False, False),
    (["deploy.py"], {"PYINFRA_YES": "True"}, False, False),
    (["deploy.py"], {"PYINFRA_YES": "on"}, False, False),
    (["deploy.py"], {"PYINFRA_YES": "0"}, False, True),
    (["deploy.py"], {"PYINFRA_YES": ""}, False, True),
    (["rollback.py"], {}, False, True),
    (["unlock.py"], {}, False, True),
    (["./deploy.py"], {}, False, True),
    (["status.py"], {}, False, False),  # changes nothing: no question
    ([], {}, False, False),  # debug-inventory and the like
])
def test_check_invocation_asks_for_y_without_a_terminal(tmp_path, monkeypatch, argv, environ, interactive,
                                                       refused):
    from djdeploy.inventory import InventoryError, check_invocation

    monkeypatch.chdir(tmp_path)
    full = ["/usr/bin/pyinfra", "inventory.py", *argv]
    if not refused:
        assert check_invocation(tmp_path, full, environ, interactive) is None
        return
    with pytest.raises(InventoryError) as error:
        check_invocation(tmp_path, full, environ, interactive)
    verb = Path(argv[-1]).name if argv[-1].endswith(".py") else "deploy.py"
    assert str(error.value).startswith("no terminal to answer pyinfra's confirmation: pass -y "
                                       f"(pyinfra -y inventory.py {verb})")


def test_check_invocation_wants_the_project_folder(tmp_path, monkeypatch):
    from djdeploy.inventory import InventoryError, check_invocation

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError) as error:
        check_invocation(project, ["pyinfra", "-y", "inventory.py", "deploy.py"], {}, True)
    assert str(error.value).startswith(f"run pyinfra from the project folder: cd {project} ")
    monkeypatch.chdir(project)
    assert check_invocation(project, ["pyinfra", "-y", "inventory.py", "deploy.py"], {}, True) is None


@pytest.mark.parametrize("flags", [["--serial"], ["--no-wait"], ["--serial", "--no-wait"]])
def test_check_invocation_refuses_the_modes_without_callbacks(tmp_path, monkeypatch, flags):
    """pyinfra's --serial and --no-wait run no operation callbacks: no deploy lock, no batches."""
    from djdeploy.inventory import InventoryError, check_invocation

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError) as error:
        check_invocation(tmp_path, ["pyinfra", "-y", *flags, "inventory.py", "deploy.py"], {}, True)
    assert str(error.value).startswith(f"{' and '.join(sorted(flags))}: not supported by deploy.py")
    assert check_invocation(tmp_path, ["pyinfra", "-y", *flags, "inventory.py", "status.py"], {}, True) is None


@pytest.mark.parametrize("argv, environ", [
    (["-y", "deploy.py", "--dry", "--diff"], {}),
    (["deploy.py", "--dry", "--yes"], {}),
    (["-vy", "rollback.py", "--dry"], {}),
    (["deploy.py", "--dry"], {"PYINFRA_YES": "1"}),
])
def test_a_dry_run_with_yes_is_refused_in_one_line(tmp_path, monkeypatch, argv, environ):
    """pyinfra skips its change detection when told yes: --dry would print an empty preview
    and exit 0, which reads as "nothing would change"."""
    from djdeploy.inventory import InventoryError, check_invocation

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError) as error:
        check_invocation(tmp_path, ["/usr/bin/pyinfra", "inventory.py", *argv], environ, False)
    assert str(error.value).startswith("--dry with -y (or PYINFRA_YES) shows no change") and "\n" not in str(error.value)
    verb = next(a for a in argv if a.endswith(".py"))
    assert f"pyinfra inventory.py {verb} --dry --diff without -y" in str(error.value)


def test_drained_waits_until_the_old_loopback_port_queues_nothing():
    """release.sh drained (the listener, when the app's socket moves off 127.0.0.1:PORT):
    returns once no connection waits in that port's accept queue, not before; with an
    empty queue after its half second; and refuses what is not a port."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    waiting = socket.create_connection(("127.0.0.1", port))  # queued: nobody accepted it
    tool = f"{ROOT}/files/release.sh"
    accepted_at = []

    def accept_later():
        time.sleep(2)
        accepted_at.append(time.monotonic())
        server.accept()[0].close()

    try:
        taker = threading.Thread(target=accept_later)
        taker.start()
        out = sh(f"bash {tool} drained {port}")
        ended = time.monotonic()
        taker.join()
        assert out.returncode == 0, out.stderr
        assert accepted_at and ended >= accepted_at[0], "returned while a connection was still queued"
        started = time.monotonic()
        assert sh(f"bash {tool} drained {port}").returncode == 0  # nothing queued now
        assert 0.5 <= time.monotonic() - started < 2.5
        refused = sh(f"bash {tool} drained '80|x'")
        assert refused.returncode == 1 and "drained: ports expected" in refused.stderr
    finally:
        waiting.close()
        server.close()
