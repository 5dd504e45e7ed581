"""The deploy lock: one deploy at a time per host, held only while a run executes.

The lock is coordination, not state the deploy manages, so it is not an operation (a
run that changes nothing reports no change). pyinfra calls `operation_start` and
`operation_end` in its main greenlet: just before the first operation executes, every
active host's lock is taken (never during --dry, which executes nothing); a host whose
lock another deploy holds fails before anything runs on it; after the last operation
the locks are released, on failed hosts too. If any host's lock is held by another
deploy, the locks taken are given back and the run stops before anything changed.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
import uuid

import gevent
from pyinfra.api import StringCommand
from pyinfra.api.state import BaseStateCallback

from djdeploy.settings import fail

CONTROLLER = socket.gethostname()
RUN_ID = uuid.uuid4().hex[:16]  # this run, as written into the locks it takes
OWNER = f"{getpass.getuser()}@{CONTROLLER} pid {os.getpid()}"


def q(value) -> str:
    return shlex.quote(str(value))


def take_command(root: str, path: str, wait: int) -> str:
    """Shell that takes the lock at `path`, waiting up to `wait` s; prints the holder if not.

    A lock taken from this controller by a process that is gone (a killed deploy) is
    cleared: the host's `kill -0` cannot see the controller, so the pid is checked here.
    """
    return (
        f"mkdir -p {q(root)}; "
        f"if [ -f {q(path)}/owner ]; then owner=$(cat {q(path)}/owner); "
        f"case \"$owner\" in *@{q(CONTROLLER)}' pid '*) echo \"holder=${{owner##* }}\";; esac; fi"
    ), (
        f"end=$(($(date +%s) + {int(wait)})); "
        f"until mkdir {q(path)} 2>/dev/null; do "
        f"if [ $(date +%s) -ge $end ]; then echo \"deploy lock held by $(cat {q(path)}/owner) since "
        f"$(cat {q(path)}/since): wait for that deploy to end, or if it was killed: "
        f"pyinfra inventory.py unlock.py\"; exit 1; fi; sleep 1; done; "
        f"echo {q(RUN_ID)} > {q(path)}/run; echo {q(OWNER)} > {q(path)}/owner; "
        f"date -u +%Y-%m-%dT%H:%M:%SZ > {q(path)}/since"
    )


def release_command(path: str, force: bool = False) -> str:
    if force:
        return f"rm -rf {q(path)}"
    return f"if [ \"$(cat {q(path)}/run 2>/dev/null)\" = {q(RUN_ID)} ]; then rm -rf {q(path)}; fi"


def _pid_gone(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    return False


def _run(host, command: str):
    status, output = host.run_shell_command(StringCommand(command), print_output=False,
                                            print_input=False)
    return status, [line.line for line in output]


class DeployLock(BaseStateCallback):
    """Registered once per run by `hold`; see the module's docstring."""

    def __init__(self):
        self.locks: dict = {}  # host name -> (root, path, wait); deploy.py's host is a proxy
        self.held: set = set()

    def take(self, host) -> str | None:
        root, path, wait = self.locks[host.name]
        probe, take = take_command(root, path, wait)
        status, lines = _run(host, probe)
        holder = next((line.split("=", 1)[1] for line in lines if line.startswith("holder=")), None)
        if holder and _pid_gone(holder):
            _run(host, release_command(path, force=True))
            print(f"    [{host.name}] cleared a deploy lock left by a killed deploy (pid {holder})",
                  file=sys.stderr)
        status, lines = _run(host, take)
        if not status:
            return lines[-1] if lines else "could not take the deploy lock"
        self.held.add(host)
        return None

    def operation_start(self, state, op_hash):
        if self.held or op_hash != state.get_op_order()[0]:
            return
        hosts = [h for h in state.inventory.get_active_hosts() if h.name in self.locks]
        jobs = {h: gevent.spawn(self.take, h) for h in hosts}
        gevent.joinall(list(jobs.values()))
        # A job that raised (a lost connection) failed too: its value is None then.
        failed = {h: job.value or f"could not take the deploy lock: {job.exception}"
                  for h, job in jobs.items() if job.value or not job.successful()}
        if failed:
            # As with an unreachable host: all hosts or none, so nothing changes anywhere.
            self.release_all()
            fail([f"{h.name}: {message}; no host was changed" for h, message in failed.items()])

    def release_all(self):
        gevent.joinall([gevent.spawn(_run, h, release_command(self.locks[h.name][1])) for h in self.held])
        self.held.clear()

    def operation_end(self, state, op_hash):
        if op_hash == state.get_op_order()[-1]:
            self.release_all()


def hold(host, root: str, path: str, wait: int) -> None:
    """Take `path` on `host` for the run's execution (see DeployLock)."""
    state = host.state
    handler = next((h for h in state.callback_handlers if isinstance(h, DeployLock)), None)
    if handler is None:
        handler = DeployLock()
        state.add_callback_handler(handler)
    handler.locks[host.name] = (root, path, wait)
