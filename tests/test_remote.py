"""exec.py and logs.py: one-off management commands and the project's logs, on the fleet
(and their pieces without it)."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
import sys
import time
import uuid

from conftest import PROJECT, ROOT, TEST_FLEET, http_get

VERB_ENV = dict(os.environ, DJDEPLOY_FLEET=TEST_FLEET)


def verb(*args, stdin=subprocess.DEVNULL, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=VERB_ENV, stdin=stdin, capture_output=True,
                          text=True, timeout=timeout)


# --- Without the fleet ---------------------------------------------------------------------------

def test_a_journal_entry_is_one_line_with_its_unit():
    from djdeploy.run.remote import log_line

    entry = {"__REALTIME_TIMESTAMP": "1764637200000000", "_SYSTEMD_UNIT": "shop.service", "MESSAGE": "GET / 200"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d shop\.service: GET / 200", log_line(json.dumps(entry)))
    entry["MESSAGE"] = list(b"caf\xc3\xa9 \xff")  # journald's form of a message that is not UTF-8
    assert log_line(json.dumps(entry)).endswith("shop.service: caf\u00e9 \ufffd")
    assert log_line("-- No entries --") == "-- No entries --"


def test_the_users_words_reach_manage_py_as_they_are(monkeypatch, tmp_path):
    """The command line exec.py sends, run by a shell as the host's would: a stand-in for
    release.sh prints the words it got, one per line."""
    from djdeploy.config.settings import parse
    from djdeploy.run.remote import manage_command

    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 80, "srv": str(tmp_path), "allow_outside_srv": True}, ["web"])
    tool = tmp_path / PROJECT / "release.sh"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    tool.chmod(0o755)
    words = ["shell", "-c", "print('$(id)'); `id`; a && b | c > /tmp/x", "*", "~", "$HOME"]
    out = subprocess.run(["bash", "-c", manage_command(s, words, sudo=False)], capture_output=True, text=True,
                         timeout=30, cwd=tmp_path).stdout
    assert out.splitlines() == ["manage", *words]


def test_run_by_pyinfra_a_verb_says_how_to_run_it():
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "pyinfra"), "@local", "exec.py"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=VERB_ENV)
    assert result.returncode == 1
    assert "exec.py is not a pyinfra deploy file: run it with Python, e.g. .venv/bin/python exec.py --help" \
        in result.stdout + result.stderr


# --- On the fleet --------------------------------------------------------------------------------

def test_exec_runs_manage_py_on_every_host_of_a_group_as_the_app_user(fleet, deployed):
    code = ("import os, pwd, socket, sys; print('ran', socket.gethostname(), pwd.getpwuid(os.getuid()).pw_name, "
            "os.environ['DJANGO_SETTINGS_MODULE'], '$(id)', '`id`'); sys.exit(7)")
    result = verb("exec.py", "web", "--", "shell", "-c", code)
    ran = sorted(line for line in result.stdout.splitlines() if " ran " in line)
    assert ran == sorted(f"[{h['address']}] ran {h['machine']} web djdeploy_settings $(id) `id`"
                         for h in fleet.by_group("web")), result.stdout + result.stderr
    assert result.returncode == 7  # the command's own exit code
    assert sorted(result.stderr.splitlines()) == sorted(f"[{h['address']}] exited 7" for h in fleet.by_group("web"))


def converse(argv: list[str], lines: list[str], prompt: bytes, timeout: float = 120) -> tuple[int, str]:
    """Run `argv` under a terminal (script(1)) and type each line as a person does: after the
    prompt shows. Returns the exit code and all the terminal showed."""
    child = subprocess.Popen(["script", "-qec", shlex.join(argv), "/dev/null"], cwd=ROOT, env=VERB_ENV,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shown, seen, deadline = b"", 0, time.monotonic() + timeout
    pending = list(lines)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([child.stdout], [], [], 1)
            if ready:
                chunk = os.read(child.stdout.fileno(), 65536)
                if not chunk:
                    break
                shown += chunk
            if pending and shown.count(prompt) > seen:
                seen = shown.count(prompt)
                child.stdin.write(pending.pop(0).encode() + b"\n")
                child.stdin.flush()
        return child.wait(timeout=max(1, deadline - time.monotonic())), shown.decode(errors="replace")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_exec_on_one_host_with_a_terminal_is_interactive(fleet, deployed):
    web = fleet.by_group("web")[0]
    typed = ["import pwd, os", "print('answer', 6 * 7, pwd.getpwuid(os.getuid()).pw_name)", "exit()"]
    code, shown = converse([sys.executable, "exec.py", web["address"], "--", "shell", "-i", "python"], typed,
                           prompt=b">>> ")
    assert code == 0, shown[-2000:]
    assert "answer 42 web" in shown.replace("\r", ""), shown[-2000:]  # Python's prompt came: it had a terminal


def test_exec_says_what_is_wrong_in_one_line(fleet, deployed):
    unknown = verb("exec.py", "nowhere", "--", "check")
    assert unknown.returncode == 2
    assert unknown.stderr == ("error: no app host is named or grouped 'nowhere': use a host name, a group "
                              "(staging, web) or all\n")
    nothing = verb("exec.py", "web")
    assert nothing.returncode == 2 and nothing.stderr.startswith("error: no command: exec.py HOST|GROUP|all --")
    failing = verb("exec.py", "staging", "--", "no_such_command")
    assert failing.returncode == 1, failing.stderr
    assert "Unknown command: 'no_such_command'" in failing.stderr


def test_logs_shows_every_process_of_every_host_prefixed(fleet, deployed):
    marker = uuid.uuid4().hex
    for h in fleet.hosts:
        port = 80 if h["group"] == "web" else 8080
        assert http_get(f"http://{h['address']}:{port}/healthz?seen={marker}")[0] == 200
    time.sleep(1)
    result = verb("logs.py", "--since", "-5min")
    assert result.returncode == 0, result.stderr
    for h in fleet.hosts:
        assert re.search(rf"^\[{re.escape(h['address'])}\] \S+ {PROJECT}\.service: .*GET /healthz\?seen={marker}",
                         result.stdout, re.M), (h, result.stdout[-2000:])


def test_logs_follows_new_lines_until_stopped(fleet, deployed):
    web = fleet.by_group("web")[0]
    marker = uuid.uuid4().hex
    follow = subprocess.Popen([sys.executable, "logs.py", web["address"], "-f", "-n", "0"], cwd=ROOT, env=VERB_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        shown, deadline, asked = b"", time.monotonic() + 30, 0.0
        while marker.encode() not in shown:  # every read with a deadline: a silent follower fails, not hangs
            assert time.monotonic() < deadline, shown[-2000:]
            if time.monotonic() - asked > 2:  # asked again until shown: journalctl -f may start late
                assert http_get(f"http://{web['address']}/healthz?follow={marker}")[0] == 200
                asked = time.monotonic()
            if select.select([follow.stdout], [], [], 1)[0]:
                chunk = os.read(follow.stdout.fileno(), 65536)
                assert chunk, shown[-2000:]  # it ended
                shown += chunk
        line = next(line for line in shown.decode(errors="replace").splitlines() if marker in line)
        assert line.startswith(f"[{web['address']}] "), line
    finally:
        follow.terminate()
        follow.wait(timeout=30)
