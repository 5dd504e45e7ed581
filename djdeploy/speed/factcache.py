"""All of a host's facts in one SSH command: the no-op deploy at the floor.

pyinfra runs one remote command per fact, and a deploy like this one asks ~40 facts of
each host (pyinfra issue 17: fact count, not bandwidth, is what a no-op pays for). Here
every fact a host was asked for in the previous run of the same deploy is gathered up
front in a single command: each fact's own command, as pyinfra builds it, run in one
batch (per-path facts grouped into one command per kind: djdeploy.speed.synth), and its
output handed to the fact's own parser. Operations then read those values, so nothing
about what they decide changes.

The batch is the host's state before the run. It answers facts only until the first
command that may have changed what they read: a command tagged with the paths it
changes (djdeploy.shell.touching: the release's unpacking, a file's upload) ends the
batch's answers only for the facts that read there (djdeploy.speed.settled.watched);
any other change ends them all. From then on those facts are live, so later operations
see what earlier ones did. A fact not in the batch (new in this run) is
asked live and joins the batch next time. A drifted host is therefore seen exactly as
without the cache, in a dry run too.

    factcache.install(host)   # first line of a deploy file
"""

from __future__ import annotations

import atexit
import copy
import datetime
import hashlib
import importlib
import json
import os
import sys
from inspect import getcallargs
from pathlib import Path

import pyinfra.api.host as pyinfra_host
from pyinfra.api import StringCommand
from pyinfra.api.facts import _MISSING_COMMAND_MARKER as MISSING_COMMAND
from pyinfra.api.facts import _make_command
from pyinfra.context import ctx_host, ctx_state

from djdeploy.cachedir import CACHE
from djdeploy.ops.facts import LockHolder
from djdeploy.run import lock
from djdeploy.speed import bookkeeping, settled, synth
from djdeploy.shell import privilege, shell_quote

PLANS = CACHE / "facts"
_live_get_fact = pyinfra_host.get_fact
_hosts: dict[str, "HostFacts"] = {}
entry_state: dict[str, object] = {}  # host name -> the run (State) its batch belongs to
COUNTS = settled.COUNTS  # remote commands per host in this run (DJDEPLOY_COUNT_COMMANDS)


SCALARS = (str, int, float, bool, type(None))


def _key(cls, args, kwargs) -> str:
    """The same string for a fact asked with the same arguments, whether they come from
    a deploy file or from the plan file (JSON: lists for tuples)."""
    args, kwargs = list(args or ()), sorted((kwargs or {}).items())
    if all(type(a) in SCALARS for a in args) and all(type(v) in SCALARS for _, v in kwargs):
        return repr((cls.__module__, cls.__qualname__, args, kwargs))  # the usual case, cheaper
    return json.dumps([f"{cls.__module__}:{cls.__qualname__}", args, kwargs], default=str)


IMMUTABLE = (*SCALARS, datetime.datetime, datetime.date)


def _copied(value):
    """A deep copy of a fact's value (operations may change what they are given)."""
    kind = type(value)
    if kind in IMMUTABLE:
        return value
    if kind is dict:
        return {k: _copied(v) for k, v in value.items()}
    if kind is list:
        return [_copied(v) for v in value]
    return copy.deepcopy(value)


def plan_file(host_name: str, deploy: str) -> Path:
    """Where the facts a deploy file asked of a host are kept between runs."""
    return PLANS / f"{settled.file_key(host_name, deploy)}.json"



class HostFacts:
    def __init__(self, host, deploy_file: str):
        self.values: dict[str, object] = {}
        self.valid = True  # the batch still answers (those of its facts left in values)
        self.changed = False  # a command of this run may have changed the host
        self.watches: dict[str, tuple | None] = {}  # key -> what it reads (settled.watched), of values
        self.not_changing = 0  # depth of not_a_change blocks open
        self.asked: dict[str, list] = {}  # key -> [class path, args, kwargs], in order
        self.plan_file = plan_file(host.name, deploy_file)
        self.deploy_file = deploy_file
        self.settling = False  # this run records whether it left the host settled
        self.watch: str | None = None  # the fingerprint's command (djdeploy.speed.settled)
        self.fingerprint: str | None = None  # the host's, before this run changed anything

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
        """Run every planned fact's command in one remote command; keep their values. With
        `self.watch`, the host's fingerprint comes first (djdeploy.speed.settled)."""
        grouped, built, alone = [], [], []  # [(group, cls, args, kwargs)], [(key, fact)], [(index, command)]
        for path, args, kwargs in self.plan():
            module, _, name = path.partition(":")
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
            kwargs = dict(kwargs)
            # Per-path facts (stat, sha1sum, systemctl) are answered by one command per kind
            # (djdeploy.speed.synth); every other fact runs its own command.
            group = synth.kind(cls, args, kwargs)
            made = _build(state, host, cls, args, kwargs, group)
            if made is None:  # a fact that cannot be built here is simply asked live later
                continue
            fact, command = made
            grouped.append((group, cls, args, kwargs))
            built.append((_key(cls, args, kwargs), fact))
            self.watches[_key(cls, args, kwargs)] = settled.watched(cls, args, kwargs)
            if group is None:
                alone.append((len(grouped) - 1, command))
        if not grouped:
            return
        group_jobs = synth.commands(grouped)
        script, marker = frame([command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
                                for _, command in alone] + list(group_jobs.values()))
        read_fingerprint = None
        if self.watch:
            line, read_fingerprint = settled.framed(self.watch)
            script = f"{line}\n{script}"
        with not_a_change(host):
            status, output = host.run_shell_command(StringCommand(script), print_output=False,
                                                    print_input=False, **privilege(host))
        if not status:
            return
        if read_fingerprint:
            self.fingerprint = read_fingerprint(output.output_lines[:1])
        if os.environ.get("DJDEPLOY_RECORD_BATCH"):  # the benchmark replays a real host's answer
            record = Path(os.environ["DJDEPLOY_RECORD_BATCH"])
            record.write_text("\n".join(output.output_lines) + "\n")
            record.with_suffix(".plan.json").write_text(json.dumps(
                [[f"{c.__module__}:{c.__qualname__}", list(a or ()), k] for _, c, a, k in grouped]))
        results = split(output.output_lines, marker)
        answered = {}  # index in grouped -> the lines its own command would print
        for job, (index, _) in enumerate(alone):
            ok, stdout = results.get(job, (False, None))
            if ok:  # a fact whose command failed is left to pyinfra, asked live
                answered[index] = stdout
        for job, group in enumerate(group_jobs, start=len(alone)):
            answered.update((synth.outputs_per_fact(group, results[job][1], grouped) if job in results else None) or {})
        for index, stdout in answered.items():
            if stdout == [MISSING_COMMAND]:  # its tool is missing: asked live
                continue
            key, fact = built[index]
            try:
                self.values[key] = fact.process(stdout) if stdout else fact.default()
            except Exception:
                continue

    def changing(self, touched) -> None:
        """A command changes the host: only `touched` ((paths, units)), or anything (None)."""
        self.changed = True
        if touched is None:
            self.valid = False
            return
        for key in [k for k in self.values if settled.reads_under(self.watches[k], touched)]:
            del self.values[key]


def _touched(method: str, args, kwargs):
    """(paths, units) a host method's call changes: an upload its file, a tagged command its
    tags (djdeploy.shell.touching); None: anything."""
    if method == "put_file":
        dest = args[1] if len(args) > 1 else kwargs.get("remote_filename")
        return ((dest,), ()) if isinstance(dest, str) and dest.startswith("/") else None
    if method == "run_shell_command":
        command = args[0] if args else kwargs.get("command")
        return getattr(command, "touches", None)
    return None


def _build(state, host, cls, args, kwargs, group=None):
    """(fact, command) as pyinfra's get_fact builds them, without its per-call handling of
    global arguments (the batch runs with the run's privilege, once); None when the fact
    needs more than a plain command (global arguments, preconditions, another shell).
    A fact a synth group answers gets no command of its own: (fact, None)."""
    if any(str(k).startswith("_") for k in kwargs):
        return None
    try:
        fact = cls()
        if fact.shell_executable or fact.check_preconditions(state, host):
            return None
        if group:
            synth.prepare(fact, group, args, kwargs)
            return fact, None
        fact_kwargs = getcallargs(fact.command, *(args or ()), **kwargs) if (args or kwargs) else {}
        made = _make_command(fact.command, dict(fact_kwargs))
        requires = _make_command(fact.requires_command, dict(fact_kwargs))
    except Exception:
        return None
    if requires:  # as pyinfra wraps it: a sentinel when the tool is missing
        made = StringCommand("if", "command", "-v", requires, ">/dev/null", "2>&1;", "then", "(", made,
                             ");", "else", "echo", f"'{MISSING_COMMAND}';", "fi")
    return fact, made


def frame(commands: list[str]) -> tuple[str, str]:
    """(script, marker): one shell script that runs `commands` one after another, each in
    its own subshell (a job's `exit` or `cd` stays there), its output framed by lines
    carrying `marker` (derived from the script, so no output can contain it): no capture,
    no temporary files, so the host spends its CPU on the facts' own commands. stderr is
    not read (a fact that fails is asked live, where pyinfra reports it); stdin is empty."""
    marker = hashlib.sha256("\0".join(commands).encode()).hexdigest()[:16]
    script = "\n".join(f"echo '@@B {marker} {index}'; (eval {shell_quote(command)}) 2>/dev/null </dev/null; "
                        f"printf '\\n@@S {marker} {index} %s\\n' $?" for index, command in enumerate(commands))
    return script, marker


def split(lines: list[str], marker: str) -> dict[int, tuple[bool, list]]:
    """{job index: (exit status 0, stdout lines)} from the output of `frame`; trailing
    empty lines dropped, as a shell's `$(...)` drops trailing newlines."""
    begin, end = f"@@B {marker} ", f"@@S {marker} "
    results, current, stdout = {}, None, []
    for line in lines:
        if line.startswith(begin):
            current, stdout = int(line[len(begin):]), []
        elif line.startswith(end) and current is not None:
            index, status = line[len(end):].split()
            while stdout and not stdout[-1]:
                stdout.pop()
            results[int(index)] = (status == "0", stdout)
            current = None
        elif current is not None:
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
        return _copied(entry.values[key])
    with not_a_change(host):
        return _live_get_fact(state, host, cls, args=args, kwargs=kwargs, **rest)



def batched(host) -> bool:
    """Whether this host's facts still come from its batch (so asking one is free)."""
    entry = _hosts.get(host.name)
    return bool(entry and entry.valid and entry.values and pyinfra_host.get_fact is get_fact)


def count(host) -> None:
    settled.count(host.name)


class not_a_change:
    """Commands run inside this block read or coordinate; they do not change the host, so the
    host's batched facts stay valid."""

    def __init__(self, host):
        self.entry = _hosts.get(host.name)

    def __enter__(self):
        if self.entry:
            self.entry.not_changing += 1

    def __exit__(self, *exc):
        if self.entry:
            self.entry.not_changing -= 1


def _watch(host, entry: "HostFacts") -> None:
    """Count every remote command; any outside a not_a_change block ends the batch's answers
    for the facts it may change (HostFacts.changing).
    Every way pyinfra changes a host goes through one of these methods: a shell command,
    an upload, an rsync."""
    for name in ("run_shell_command", "put_file", "rsync"):
        method = getattr(host, name, None)
        if method is None:
            continue

        def watched(*args, _method=method, _name=name, **kwargs):
            count(host)
            if not entry.not_changing:
                entry.changing(_touched(_name, args, kwargs))
            return _method(*args, **kwargs)

        setattr(host, name, watched)


def _report() -> None:
    runs = {id(entry_state.get(name)): entry_state.get(name) for name in _hosts}
    good = {key: _succeeded(state) for key, state in runs.items()}
    for name, entry in _hosts.items():
        if pyinfra_host.get_fact is get_fact:
            entry.save()
        if not entry.settling:
            continue
        if entry.watch and entry.fingerprint and not entry.changed and good[id(entry_state.get(name))]:
            settled.write(name, entry.deploy_file, settled.RUN["inputs"], entry.watch, entry.fingerprint)
        else:
            settled.forget(name, entry.deploy_file)


def _succeeded(state) -> bool:
    """A real run that went to its end, every operation on every host without error: what
    it found on a host it left unchanged (not entry.changed) is then the settled state."""
    from pyinfra.api.state import StateStage

    if state is None or "--dry" in sys.argv[1:] or state.current_stage != StateStage.Disconnect:
        return False
    return not state.failed_hosts and all(not result.error_ops for result in state.results.values())


_started: list = []  # install's one-time set-up done


def install(host, skip_when_settled: bool = False) -> None:
    """Serve this host's facts from one batched command (see the module's docstring).
    With `skip_when_settled` (deploy.py), when the whole fleet is settled
    (djdeploy.speed.settled) this raises Settled: the deploy file plans nothing for this
    host; otherwise the batch leads with the host's fingerprint, recorded after the run
    when it changed nothing there.

    DJDEPLOY_FACT_BATCH=off turns it off (pyinfra's one command per fact), to compare;
    DJDEPLOY_SETTLED=off keeps the batch but plans every host; DJDEPLOY_SPEED=off turns off
    every speed-up (plain pyinfra: djdeploy.speed_up never calls this).
    """
    state = host.state
    real = ctx_host.get()  # deploy files see a proxy; facts need the Host itself
    batching = _start()
    settling = batching and skip_when_settled and settled.enabled()
    if settling and settled.fleet_settled(state, state.current_exec_filename or "deploy.py"):
        raise settled.Settled(f"{host.name}: settled")
    if host.name in _hosts and entry_state.get(host.name) is state:
        return
    entry = HostFacts(host, state.current_exec_filename or "deploy.py")
    _hosts[host.name] = entry
    entry_state[host.name] = state
    _watch(real, entry)
    if batching:
        if settling:
            plan = entry.plan()
            entry.settling = settled.RUN.get("inputs") is not None
            entry.watch = settled.fingerprint_command(plan) if plan else None
        entry.prefetch(state, real)


def _start() -> bool:
    """The run's one-time set-up; whether facts are batched."""
    batching = os.environ.get("DJDEPLOY_FACT_BATCH") != "off"
    if not _started:
        _started.append(True)
        atexit.register(_report)
        bookkeeping.install()
        lock.BATCH = LockBatch()
    if batching and pyinfra_host.get_fact is not get_fact:
        pyinfra_host.get_fact = get_fact
    return batching




def _nothing():
    return iter(())


class LockBatch(lock.Batch):
    """The deploy lock with the fact batch (djdeploy/run/lock.py): its commands leave a
    host's batched facts valid, and a host the run leaves as it is needs no lock."""

    quiet = staticmethod(not_a_change)

    def needs_lock(self, state, host, path: str) -> bool:
        """Whether this run changes `host`, or someone else holds its lock (then the run
        waits for it as usual). A host the run leaves as it is needs no lock: its
        operations yield nothing, from the facts read before the run; they are then not
        asked a second time when pyinfra executes them (nothing ran on the host since)."""
        if not batched(host):  # deciding would ask every fact a second time: just lock
            return True
        if host.get_fact(LockHolder, path=path) is not None:
            return True
        settled = []
        with ctx_state.use(state), ctx_host.use(host):
            for op_hash in host.op_hash_order:
                op_data = state.get_op_data_for_host(host, op_hash)
                try:
                    if op_data.operation_meta.will_change:
                        return True
                except RuntimeError:  # its _if asks whether an earlier one changed: counted there
                    continue
                settled.append(op_data)
        for op_data in settled:
            op_data.command_generator = _nothing
        return False
