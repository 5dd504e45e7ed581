"""The deploy lock: one deploy at a time per host, held only while a run executes.

The lock is coordination, not state the deploy manages, so it is not an operation (a
run that changes nothing reports no change). pyinfra calls `operation_start` and
`operation_end` in its main greenlet: just before the first operation executes, the
lock of every active host the run will change is taken (never during --dry, which
executes nothing; nor on a host the run leaves as it is, unless another deploy holds
its lock: then the run waits for it as usual); a host whose
lock another deploy holds fails before anything runs on it; after the last operation
the locks are released, and a host's as soon as it fails. If any host's lock is held by another
deploy, the locks taken are given back and the run stops before anything changed.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import sys
import uuid

import gevent
from pyinfra.api import StringCommand
from pyinfra.api.state import BaseStateCallback

from djdeploy.errors import fail
from djdeploy.ops.facts import LockHolder
from djdeploy.shell import CONTROLLER, privilege, shell_quote
from djdeploy.terminal import printable

RUN_ID = uuid.uuid4().hex[:16]  # this run, as written into the locks it takes
OWNER = f"{getpass.getuser()}@{CONTROLLER} pid {os.getpid()}"


def take_command(root: str, path: str, wait: int, stale_run: str | None = None) -> str:
    """Shell that takes the lock at `path`, waiting up to `wait` s; prints the holder if not.

    `stale_run`: the run id of a lock known to be left by a killed deploy, cleared first
    (only if it still holds the lock).
    """
    clear = ""
    if stale_run:
        clear = (f"if [ \"$(cat {shell_quote(path)}/run 2>/dev/null)\" = {shell_quote(stale_run)} ]; then rm -rf {shell_quote(path)}; "
                 "echo cleared; fi; ")
    return (
        f"mkdir -p {shell_quote(root)}; {clear}end=$(($(date +%s) + {int(wait)})); "
        f"until mkdir {shell_quote(path)} 2>/dev/null; do "
        f"if [ $(date +%s) -ge $end ]; then owner=$(cat {shell_quote(path)}/owner 2>/dev/null); "
        f"since=$(cat {shell_quote(path)}/since 2>/dev/null); "
        "echo \"deploy lock held by ${owner:-an unknown deploy (its lock folder is empty)} since "
        "${since:-an unknown time}: wait for that deploy to end, or if it was killed: "
        "pyinfra inventory.py unlock.py\"; exit 1; fi; sleep 1; done; "
        f"echo {shell_quote(RUN_ID)} > {shell_quote(path)}/run; echo {shell_quote(OWNER)} > {shell_quote(path)}/owner; "
        f"date -u +%Y-%m-%dT%H:%M:%SZ > {shell_quote(path)}/since"
    )


def unlock_command(path: str) -> str:
    """Shell that gives the lock back, if this run still holds it."""
    return f"if [ \"$(cat {shell_quote(path)}/run 2>/dev/null)\" = {shell_quote(RUN_ID)} ]; then rm -rf {shell_quote(path)}; fi"


def _left_by_killed_deploy(owner: str) -> bool:
    """Taken from this controller by a process that no longer exists."""
    if f"@{CONTROLLER} pid " not in owner:
        return False
    try:
        os.kill(int(owner.rsplit(" ", 1)[1]), 0)
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    return False


class Batch:
    """What the lock asks of the way facts are read. Plain pyinfra (DJDEPLOY_SPEED=off):
    every host of the run is locked, and a lock command is a command like any other. The
    fact batch (djdeploy/speed/factcache.py) lends its own when it is on."""

    @staticmethod
    def quiet(host):
        """A block whose commands read or coordinate, and change nothing on `host`."""
        return contextlib.nullcontext()

    def needs_lock(self, state, host, path: str) -> bool:
        return True


BATCH = Batch()


def _run(host, command: str):
    with BATCH.quiet(host):  # coordination: the host's batched facts still hold
        status, output = host.run_shell_command(StringCommand(command), print_output=False,
                                                print_input=False, **privilege(host))
    return status, [line.line for line in output]


class DeployLock(BaseStateCallback):
    """Registered once per run by `hold`; see the module's docstring."""

    def __init__(self):
        self.locks: dict = {}  # host name -> (root, path, wait); deploy.py's host is a proxy
        self.held: set = set()
        self.started = False

    def take(self, host) -> str | None:
        root, path, wait = self.locks[host.name]
        # Who holds it, as read with the host's other facts (one command for all of them).
        holder = host.get_fact(LockHolder, path=path)
        stale = holder and _left_by_killed_deploy(holder["owner"])
        status, lines = _run(host, take_command(root, path, wait, holder["run"] if stale else None))
        if "cleared" in lines:
            print(f"    [{host.name}] cleared a deploy lock left by a killed deploy ({printable(holder['owner'])})",
                  file=sys.stderr)
        if not status:
            return next((l for l in lines if l.startswith("deploy lock")), "could not take the deploy lock")
        self.held.add(host)
        return None

    def operation_start(self, state, op_hash):
        if self.started or op_hash != state.get_op_order()[0]:
            return
        self.started = True
        hosts = [h for h in state.inventory.get_active_hosts()
                 if h.name in self.locks and BATCH.needs_lock(state, h, self.locks[h.name][1])]
        # One host after another, in one order for every deploy (by name), each waiting up
        # to lock_wait: two deploys started together meet at the same first host, where one
        # waits for the other, instead of each taking some hosts and both waiting in vain.
        failed = {}
        for h in sorted(hosts, key=lambda h: h.name):
            try:
                message = self.take(h)
            except Exception as error:  # a lost connection
                message = f"could not take the deploy lock: {error}"
            if message:
                failed[h] = message
                break
        if failed:
            # As with an unreachable host: all hosts or none, so nothing changes anywhere.
            self.release_all()
            fail([f"{h.name}: {message}; no host was changed" for h, message in failed.items()])

    def release_at_exit(self):
        """However else the run ends (an exception, Ctrl-C), the locks it holds go; only a
        killed controller leaves one (which the next deploy from here clears)."""
        with contextlib.suppress(Exception):
            self.release_all()

    def release_all(self):
        gevent.joinall([gevent.spawn(_run, h, unlock_command(self.locks[h.name][1])) for h in self.held])
        self.held.clear()

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        """A host that fails an operation runs nothing more in this run: its lock goes now.
        (When every host has failed, pyinfra stops with "No hosts remaining!" before the
        last operation ends, so waiting for that would leave the locks behind.)"""
        arguments = state.get_op_meta(op_hash).global_arguments
        if arguments.get("_ignore_errors") or arguments.get("_continue_on_error"):
            return  # the host goes on, holding its lock
        held = next((h for h in self.held if h.name == host.name), None)
        if held is not None:
            self.held.discard(held)
            with contextlib.suppress(Exception):  # a host that dropped its connection keeps it
                _run(held, unlock_command(self.locks[held.name][1]))

    def operation_end(self, state, op_hash):
        if self.held and op_hash == state.get_op_order()[-1]:
            self.release_all()


def hold(host, root: str, path: str, wait: int) -> None:
    """Take `path` on `host` for the run's execution (see DeployLock)."""
    state = host.state
    handler = next((h for h in state.callback_handlers if isinstance(h, DeployLock)), None)
    if handler is None:
        handler = DeployLock()
        state.add_callback_handler(handler)
        atexit.register(handler.release_at_exit)
    handler.locks[host.name] = (root, path, wait)
    # Asked while planning, in a dry run too (free from the batch): a dry run says who
    # holds the lock, and both kinds of run ask the host the same facts.
    holder = host.get_fact(LockHolder, path=path)
    if holder and _left_by_killed_deploy(holder["owner"]):
        print(f"    [{host.name}] deploy lock left by a killed deploy ({printable(holder['owner'])}): a deploy clears it",
              file=sys.stderr)
    elif holder:
        print(f"    [{host.name}] deploy lock held by {printable(holder['owner'] or 'an unknown deploy')}: "
              f"a deploy waits up to {wait} s for it", file=sys.stderr)
