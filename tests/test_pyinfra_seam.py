"""The seam to pyinfra (djdeploy/speed/, docs/architecture.md): what the speed-ups copy,
wrap or replace of pyinfra is fingerprinted, so a pyinfra upgrade that changes any of it
fails here by name; and the fact batch answers as pyinfra's own get_fact does, on
pyinfra's @local connector (this machine)."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

# "module:qualified name" -> the first 16 hex of the sha256 of its source, as pyinfra
# 3.10.0 ships it (constraints.txt). Read from pyinfra's files, not from its modules, which
# the speed-ups patch while they run.
FINGERPRINTS = {
    # bookkeeping: the order of operations, and the global arguments read once per call
    "pyinfra.api.util:get_operation_order_from_stack": "af13fe995eb540e3",
    "pyinfra.api.arguments:pop_global_arguments": "acc87f2f3d5006e4",
    "pyinfra.api.arguments:all_global_arguments": "e2f365132720e833",
    # factcache: get_fact wrapped, its commands built as pyinfra builds them, the no-op
    # decided from will_change and a settled operation's commands left out
    "pyinfra.api.facts:get_fact": "245483108ec15f8a",
    "pyinfra.api.facts:_get_fact": "be580e948b882b32",
    "pyinfra.api.facts:_make_command": "3d0b6c14ede7f2af",
    "pyinfra.api.facts:_MISSING_COMMAND_MARKER": "1b2c241e72b9bdc2",
    "pyinfra.api.operation:OperationMeta.will_change": "422c802273f0b043",
    "pyinfra.api.operations:_run_host_op": "db9855ef5312a279",
    "pyinfra.api.host:Host.run_shell_command": "c6358268abd0e979",
    "pyinfra.api.host:Host.put_file": "f8013071c174e231",
    # synth: the per-path facts' commands and parsers, answered many at a time
    "pyinfra.facts.files:LINUX_STAT_COMMAND": "a032fa77329fba94",
    "pyinfra.facts.files:STAT_REGEX": "ec6cae21d2442101",
    "pyinfra.facts.files:_unquote_stat_name": "e9fe1601a94e70db",
    "pyinfra.facts.files:File": "5a630f12f9b786be",
    "pyinfra.facts.files:Directory": "7aa669ab0c528e00",
    "pyinfra.facts.files:Link": "5a61da3b236b9e68",
    "pyinfra.facts.files:HashFileFactBase": "3f1d5159a742ee8a",
    "pyinfra.facts.files:Sha1File": "bd6ee708ffbd476c",
    "pyinfra.facts.systemd:SystemdStatus": "c4e5f46787d66654",
    "pyinfra.facts.systemd:SystemdEnabled": "f58a513cf2467599",
}


def source(name: str) -> str:
    """The source of `name` ("module:Qual.name") in pyinfra's file."""
    module, _, qualname = name.partition(":")
    tree_source = Path(importlib.util.find_spec(module).origin).read_text()
    body = ast.parse(tree_source).body
    node = None
    for part in qualname.split("."):
        node = next((n for n in body if getattr(n, "name", None) == part or (
            isinstance(n, (ast.Assign, ast.AnnAssign)) and part in
            [t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)])), None)
        assert node is not None, f"pyinfra has no {name} any more: djdeploy/speed/ relies on it"
        body = getattr(node, "body", [])
    return ast.get_source_segment(tree_source, node)


def fingerprint(name: str) -> str:
    return hashlib.sha256(source(name).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_what_the_speed_ups_rely_on_in_pyinfra_is_unchanged(name):
    assert fingerprint(name) == FINGERPRINTS[name], (
        f"pyinfra's {name} changed: read djdeploy/speed/ against the new one (docs/architecture.md), "
        "then give it its new fingerprint here")


def test_the_fact_batch_answers_as_pyinfras_get_fact_on_this_machine(tmp_path, monkeypatch):
    """Files, folders, links, hashes (and their absence), names with a space or a quote,
    and facts of the deploy's own: one batched command gives each fact the value pyinfra's
    own get_fact gives it, on the @local connector."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all
    from pyinfra.facts.files import Directory, File, Link, Sha1File

    from djdeploy.ops.facts import DirectoryFiles, FileText, LockHolder
    from djdeploy.speed import factcache

    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a file").write_text("text\n")
    (tmp_path / "dir" / "it's").write_text("x" * 5000)
    (tmp_path / "dir" / "link").symlink_to("a file")
    (tmp_path / "lock").mkdir()
    (tmp_path / "lock" / "owner").write_text("me@there pid 1\n")
    (tmp_path / "lock" / "run").write_text("0123456789abcdef\n")
    (tmp_path / "lock" / "since").write_text("2026-12-06T00:00:00Z\n")
    # Reading a file (a hash, a text) or a folder (a listing) moves its atime, which stat
    # reports, while it is not later than its mtime (relatime): made later, so it stays.
    now = time.time()
    for path in [tmp_path / "dir", *(tmp_path / "dir").iterdir(), tmp_path / "lock", *(tmp_path / "lock").iterdir()]:
        os.utime(path, (now, now - 60), follow_symlinks=False)  # a link's own times too
    asked = [(File, {"path": str(tmp_path / "dir" / "a file")}), (File, {"path": str(tmp_path / "missing")}),
             (File, {"path": str(tmp_path / "dir" / "it's")}), (Directory, {"path": str(tmp_path / "dir")}),
             (Directory, {"path": str(tmp_path / "missing")}), (Link, {"path": str(tmp_path / "dir" / "link")}),
             (Sha1File, {"path": str(tmp_path / "dir" / "a file")}), (Sha1File, {"path": str(tmp_path / "missing")}),
             (DirectoryFiles, {"path": str(tmp_path / "dir")}), (FileText, {"path": str(tmp_path / "dir" / "a file")}),
             (LockHolder, {"path": str(tmp_path / "lock")}), (LockHolder, {"path": str(tmp_path / "missing")})]
    monkeypatch.setattr(factcache, "PLANS", tmp_path / "plans")
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("@local")
    entry = factcache.HostFacts(host, "deploy.py")
    entry.plan_file.parent.mkdir(parents=True)
    entry.plan_file.write_text(json.dumps([[f"{c.__module__}:{c.__qualname__}", [], kw] for c, kw in asked]))
    entry.prefetch(state, host)
    for cls, kwargs in asked:
        key = factcache._key(cls, (), kwargs)
        assert key in entry.values, f"the batch did not answer {cls.__name__}({kwargs})"
        live = factcache._live_get_fact(state, host, cls, kwargs=kwargs)
        assert entry.values[key] == live, (cls.__name__, kwargs, entry.values[key], live)
    assert any(value for value in entry.values.values())  # real answers, not only absences
