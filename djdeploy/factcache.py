"""All of a host's facts in one SSH command: the no-op deploy at the floor.

pyinfra runs one remote command per fact, and a deploy like this one asks ~40 facts of
each host (pyinfra issue 17: fact count, not bandwidth, is what a no-op pays for). Here
every fact a host was asked for in the previous run of the same deploy is gathered up
front in a single command: each fact's own command, as pyinfra builds it, captured,
run in one batch, and its output handed back to pyinfra's own parser. Operations then
read those values, so nothing about what they decide changes.

The batch is the host's state before the run. It answers facts only until the first
operation that changes something on that host; from then on facts are live, so later
operations see what earlier ones did. A fact not in the batch (new in this run) is
asked live and joins the batch next time. A drifted host is therefore seen exactly as
without the cache, in a dry run too.

    factcache.install(host)   # first line of a deploy file
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import importlib
import json
import os
import sys
from pathlib import Path

import pyinfra.api.host as pyinfra_host
from pyinfra.api import StringCommand
from pyinfra.connectors.util import CommandOutput, OutputLine
from pyinfra.context import ctx_host

from djdeploy.build import CACHE

PLANS = CACHE / "facts"
_live_get_fact = pyinfra_host.get_fact
_hosts: dict[str, "HostFacts"] = {}
entry_state: dict[str, object] = {}  # host name -> the run (State) its batch belongs to
COUNTS: dict[str, int] = {}  # remote commands per host in this run (DJDEPLOY_COUNT_COMMANDS)


def _key(cls, args, kwargs) -> str:
    return json.dumps([f"{cls.__module__}:{cls.__qualname__}", list(args or ()),
                       sorted((kwargs or {}).items())], default=str)


def plan_file(host_name: str, deploy: str) -> Path:
    """Where the facts a deploy file asked of a host are kept between runs."""
    digest = hashlib.sha256(f"{host_name}\n{Path(deploy).name}".encode()).hexdigest()[:20]
    return PLANS / f"{digest}.json"



class _Capture:
    """Stands in for host.run_shell_command while a fact builds its command, or replays
    the output the batch gave for it."""

    def __init__(self, reply=None):
        self.commands: list = []
        self.reply = reply

    def __call__(self, command, **kwargs):
        self.commands.append((command, kwargs))
        return self.reply or (True, CommandOutput([]))


class HostFacts:
    def __init__(self, host, deploy_file: str):
        self.values: dict[str, object] = {}
        self.valid = True
        self.quiet = 0
        self.asked: dict[str, list] = {}  # key -> [class path, args, kwargs], in order
        self.plan_file = plan_file(host.name, deploy_file)

    def plan(self) -> list:
        try:
            return json.loads(self.plan_file.read_text())
        except (OSError, ValueError):
            return []

    def save(self) -> None:
        if self.asked:
            PLANS.mkdir(parents=True, exist_ok=True)
            self.plan_file.write_text(json.dumps(list(self.asked.values())))

    def prefetch(self, state, host) -> None:
        """Run every planned fact's command in one remote command; keep their values."""
        planned = []
        for path, args, kwargs in self.plan():
            module, _, name = path.partition(":")
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
            kwargs = dict(kwargs)
            capture = _Capture()
            try:
                _fact_through(capture, state, host, cls, args, kwargs, apply_failed_hosts=False)
            except Exception:  # a fact that cannot be built here is simply asked live later
                continue
            if len(capture.commands) == 1 and all(capture.commands[0][1].get(k) == v for k, v in
                                                  privilege(host).items()):
                planned.append((cls, args, kwargs, capture.commands[0][0]))
        if not planned:
            return
        # All at once on the host (the slowest fact sets the pace); each job frames its own
        # output in its own file, and one `cat` prints them back in order.
        script = ['d=$(mktemp -d)']
        for index, (_, _, _, command) in enumerate(planned):
            raw = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
            script.append(
                f"(o=$(sh -c {_quote(raw)} 2>\"$d/e{index}\"); r=$?; {{ echo '@@B {index}'; "
                f"[ -n \"$o\" ] && printf '%s\\n' \"$o\"; echo \"@@S {index} $r\"; "
                f"[ -s \"$d/e{index}\" ] && sed 's/^/@@E /' \"$d/e{index}\"; }} > \"$d/{index:04d}\") &")
        script.append('wait; cat "$d"/[0-9]*; rm -rf "$d"')
        with quiet(host):
            status, output = host.run_shell_command(StringCommand("\n".join(script)), print_output=False,
                                                    print_input=False, **privilege(host))
        if not status:
            return
        if os.environ.get("DJDEPLOY_RECORD_BATCH"):  # the benchmark replays a real host's answer
            record = Path(os.environ["DJDEPLOY_RECORD_BATCH"])
            record.write_text("\n".join(output.output_lines) + "\n")
            record.with_suffix(".plan.json").write_text(json.dumps(
                [[f"{c.__module__}:{c.__qualname__}", list(a or ()), k] for c, a, k, _ in planned]))
        results = _split(output.output_lines, len(planned))
        for index, (cls, args, kwargs, _) in enumerate(planned):
            if index not in results:
                continue
            ok, stdout, stderr = results[index]
            lines = [OutputLine("stdout", line) for line in stdout]
            lines += [OutputLine("stderr", line) for line in stderr]
            try:
                value = _fact_through(_Capture(reply=(ok, CommandOutput(lines))), state, host, cls,
                                      args, kwargs)
            except Exception:
                continue
            self.values[_key(cls, args, kwargs)] = value


PRIVILEGE = ("_sudo", "_sudo_user", "_sudo_password", "_use_sudo_login", "_preserve_sudo_env",
             "_su_user", "_use_su_login", "_su_shell", "_preserve_su_env", "_su_password",
             "_doas", "_doas_user")


def privilege(host) -> dict:
    """The run's sudo/su arguments (--sudo, host data), for commands run outside operations."""
    from pyinfra.api.arguments import pop_global_arguments

    arguments, _ = pop_global_arguments(host.state, host, {})
    return {k: v for k, v in arguments.items() if k in PRIVILEGE and v}


def _fact_through(runner: _Capture, state, host, cls, args, kwargs, **rest):
    """pyinfra's own get_fact, with `runner` standing in for the host's commands."""
    real = host.run_shell_command
    host.run_shell_command = runner
    try:
        return _live_get_fact(state, host, cls, args=args, kwargs=kwargs, **rest)
    finally:
        host.run_shell_command = real


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _split(lines: list[str], count_: int) -> dict[int, tuple[bool, list, list]]:
    results, current, stdout, stderr = {}, None, [], []
    for line in lines:
        if line.startswith("@@B "):
            current, stdout, stderr = int(line[4:]), [], []
        elif line.startswith("@@S ") and current is not None:
            index, status = line[4:].split()
            results[int(index)] = (status == "0", stdout, stderr)
        elif line.startswith("@@E ") and current is not None and current in results:
            results[current][2].append(line[4:])
        elif current is not None and current not in results:
            stdout.append(line)
    return results


def get_fact(state, host, cls, args=None, kwargs=None, **rest):
    """pyinfra's get_fact, answered from the host's batch while it still holds."""
    entry = _hosts.get(host.name)
    if entry is None or state is not entry_state.get(host.name):
        return _live_get_fact(state, host, cls, args=args, kwargs=kwargs, **rest)
    key = _key(cls, args, kwargs)
    entry.asked.setdefault(key, [f"{cls.__module__}:{cls.__qualname__}", list(args or ()),
                                 dict(kwargs or {})])
    if entry.valid and key in entry.values:
        return copy.deepcopy(entry.values[key])
    with quiet(host):
        return _live_get_fact(state, host, cls, args=args, kwargs=kwargs, **rest)



def count(host) -> None:
    COUNTS[host.name] = COUNTS.get(host.name, 0) + 1


class quiet:
    """Commands run inside this block read or coordinate; they do not change the host."""

    def __init__(self, host):
        self.entry = _hosts.get(host.name)

    def __enter__(self):
        if self.entry:
            self.entry.quiet += 1

    def __exit__(self, *exc):
        if self.entry:
            self.entry.quiet -= 1


def _watch(host, entry: "HostFacts") -> None:
    """Count every remote command; any that is not quiet ends the batch's validity."""
    for name in ("run_shell_command", "put_file"):
        method = getattr(host, name)

        def watched(*args, _method=method, **kwargs):
            count(host)
            if not entry.quiet:
                entry.valid = False
            return _method(*args, **kwargs)

        setattr(host, name, watched)


def _report() -> None:
    for entry in _hosts.values():
        if pyinfra_host.get_fact is get_fact:
            entry.save()
    if os.environ.get("DJDEPLOY_COUNT_COMMANDS"):
        for name, n in sorted(COUNTS.items()):
            print(f"remote commands: {name} {n}", file=sys.stderr)


def install(host) -> None:
    """Serve this host's facts from one batched command (see the module's docstring).

    DJDEPLOY_FACT_BATCH=off turns it off (pyinfra's one command per fact), to compare.
    """
    batching = os.environ.get("DJDEPLOY_FACT_BATCH") != "off"
    state = host.state
    real = ctx_host.get()  # deploy files see a proxy; facts need the Host itself
    if not _hosts:
        atexit.register(_report)
    if batching and pyinfra_host.get_fact is not get_fact:
        pyinfra_host.get_fact = get_fact
    if host.name in _hosts and entry_state.get(host.name) is state:
        return
    entry = HostFacts(host, state.current_exec_filename or "deploy.py")
    _hosts[host.name] = entry
    entry_state[host.name] = state
    _watch(real, entry)
    if batching:
        entry.prefetch(state, real)
