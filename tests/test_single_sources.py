"""Where the host side and the controller side must agree, both are run here and compared:
the config hash (release.sh records it, the Deployment fact reads it), the health check
(release.sh's gate, status.py's health=), and the files a restart is owed for (deploy.py's
rollout.changed(...) and AppSettings.config_files)."""

from __future__ import annotations

import ast
import http.server
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT
from djdeploy.config.settings import parse
from djdeploy.ops.facts import Deployment, HealthAnswer
from djdeploy.ops.releases import tool_env

RELEASE_TOOL = ROOT / "files" / "release.sh"


def bash(script: str, **kwargs) -> list[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                          timeout=30, **kwargs).stdout.splitlines()


def release_tool_hash(config_files: list[str]) -> str:
    """The hash release.sh writes into .serving, by release.sh's own expression."""
    text = RELEASE_TOOL.read_text()
    serving = re.search(r'serving\(\) \{\n\s*echo "\$1 \$\(config_hash\)"', text)
    config_hash = re.search(r'config_hash\(\) \{\n\s*(cat \$CONFIG_FILES[^\n]*)\n\}', text)
    assert serving and config_hash, "release.sh's serving() and config_hash() no longer have the shape this test reads"
    return bash(f'CONFIG_FILES="{" ".join(config_files)}"; {config_hash.group(1)}')[0]


def fact_hash(root: Path, config_files: list[str]) -> str:
    fact = Deployment()
    return fact.process(bash(fact.command(str(root), config_files)))["config"]


def test_the_config_hash_is_the_same_on_both_sides(tmp_path):
    (tmp_path / "releases").mkdir()
    files = [str(tmp_path / name) for name in (".env", "run", "never-written")]
    Path(files[0]).write_text("A=1\n")
    Path(files[1]).write_text("#!/bin/sh\n")
    before = release_tool_hash(files)
    assert re.fullmatch(r"[0-9a-f]{16}", before)
    assert fact_hash(tmp_path, files) == before
    Path(files[0]).write_text("A=2\n")  # a changed file: both sides see a new hash
    after = release_tool_hash(files)
    assert after != before and fact_hash(tmp_path, files) == after


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []
    delay = 0.0
    status = 204

    def do_GET(self):
        Recorder.seen.append((self.path, self.headers.get("Host")))
        time.sleep(Recorder.delay)
        self.send_response(Recorder.status)
        self.end_headers()

    def log_message(self, *args):
        pass


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """An HTTP server on a unix socket, as gunicorn listens behind the front."""

    def get_request(self):
        request, _ = super().get_request()
        return request, ("", 0)  # a unix socket's peer has no address


@pytest.fixture
def server():
    srv = Path(tempfile.mkdtemp(prefix="srv-"))  # short: a unix socket's path has at most 107 bytes
    (srv / "my_awesome_project" / "socket").mkdir(parents=True)
    httpd = UnixServer(str(srv / "my_awesome_project" / "socket" / "gunicorn.sock"), Recorder)
    # Its request threads are joined when it closes: a thread alive later would be there
    # when a test imports pyinfra's CLI, which patches threading for gevent.
    httpd.daemon_threads = False
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Recorder.seen, Recorder.delay, Recorder.status = [], 0.0, 204
    yield str(srv)
    httpd.shutdown()
    httpd.server_close()
    shutil.rmtree(srv)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is what the hosts' release tool uses")
def test_status_asks_the_health_check_the_gate_makes(server, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 80, "srv": server, "allow_outside_srv": True, "health_path": "/healthz",
                       "health_host": "shop.example", "health_timeout": 1})
    tool = tmp_path / "release.sh"
    shutil.copy(RELEASE_TOOL, tool)
    tool.chmod(0o750)  # as the deploy uploads it
    fact = HealthAnswer()
    command = fact.command(str(tool), tool_env(s))
    assert fact.process(bash(command)) == "204"
    assert Recorder.seen == [("/healthz", "shop.example")]  # the gate's path and Host header
    Recorder.status = 500
    assert fact.process(bash(command)) == "500"
    Recorder.delay = 2  # slower than health_timeout: no answer, as the gate would count it
    started = time.monotonic()
    assert fact.process(bash(command)) == "none"
    assert time.monotonic() - started < 1.9
    assert fact.process(bash(fact.command(str(tmp_path / "no-such-tool"), tool_env(s)))) == "none"


# Operations in deploy.py's rollout.changed(...) that are restart reasons but not files.
NOT_FILES = {"virtualenv", "listener"}
# Operations that name no dest/path: the file each writes.
WRITES = {"env_file": "env_file", "shared_secret_key": "secret_key_files", "secret_key": "secret_key_files", "socket_unit": "socket_file", "process_units": "process_unit_files"}


def test_every_file_a_restart_is_owed_for_is_hashed_and_every_hashed_file_owes_one(monkeypatch):
    monkeypatch.chdir(ROOT)
    s = parse("web1", {"app_user": "web", "port": 8080, "processes": {"worker": {"command": "work"}}})
    tree = ast.parse((ROOT / "deploy.py").read_text())
    calls = {node.targets[0].id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
             and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)}
    changed = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                   and isinstance(node.func, ast.Attribute) and node.func.attr == "changed")
    restart_files = set()
    for arg in changed.args:
        call = calls[arg.id]
        operation = call.func.attr
        if operation in NOT_FILES:
            continue
        where = next((k.value for k in call.keywords if k.arg in ("dest", "path")), None)
        if where is None:
            written = getattr(s, WRITES[operation])
            restart_files.update(written if isinstance(written, tuple) else [written])
        else:
            restart_files.add(eval(compile(ast.Expression(where), "deploy.py", "eval"), {"s": s}))
    assert restart_files == set(s.config_files)
