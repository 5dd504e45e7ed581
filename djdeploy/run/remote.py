"""One-off commands and logs on the hosts, from the controller: the verbs exec.py and logs.py.

pyinfra runs operations, not interactive programs, and does not return a command's exit
code. These verbs read the same inventory pyinfra reads (inventory.py, group_data/,
`--data`) with pyinfra's own loader, then run plain `ssh` to each host, in parallel,
each line of output prefixed by its host. One host, with a terminal on both ends, gets a
terminal of its own (`shell`, `createsuperuser`). The user's words are never read by a
shell: each one reaches the host quoted, and manage.py gets them as its arguments.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from djdeploy.config.appsettings import AppSettings
from djdeploy.config.settings import parse
from djdeploy.errors import DataError
from djdeploy.terminal import printable
from djdeploy.ops.releases import tool_env
from djdeploy.shell import shell_quote

SSH_OPTIONS = {  # inventory data -> ssh's own option
    "ssh_port": "Port", "ssh_user": "User", "ssh_key": "IdentityFile",
    "ssh_known_hosts_file": "UserKnownHostsFile", "ssh_strict_host_key_checking": "StrictHostKeyChecking",
}


class UsageError(Exception):
    """What the user asked for cannot be done: one line."""


@dataclass
class Target:
    name: str
    data: dict
    settings: AppSettings


def targets(project_dir: Path, where: str, data: dict) -> list[Target]:
    """The app hosts named by `where` (a host, a group, or "all"), with their settings."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    state = State()  # pyinfra's CLI loads the inventory (and group_data/) with one in context
    state.cwd = str(project_dir)
    with ctx_state.use(state):
        inventory = make_inventory("inventory.py", override_data=data, cwd=str(project_dir))
    chosen = []
    for host in inventory:
        if where not in ("all", host.name, *host.groups):
            continue
        values = host.data.dict()
        if values.get("database_server") is True or values.get("balancer") is True:
            continue  # no app there
        chosen.append(Target(host.name, values, parse(host.name, values, host.groups)))
    if not chosen:
        groups = sorted({g for host in inventory for g in host.groups} - {"inventory"})  # pyinfra adds the file's name
        raise UsageError(f"no app host is named or grouped {where!r}: use a host name, a group "
                         f"({', '.join(groups)}) or all")
    return chosen


def ssh_argv(target: Target, terminal: bool) -> list[str]:
    argv = ["ssh", "-t" if terminal else "-T", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
    for key, option in SSH_OPTIONS.items():
        value = target.data.get(key)
        if value is not None:
            if key == "ssh_strict_host_key_checking":
                value = {"off": "no", "accept-new": "accept-new", "yes": "yes"}.get(str(value), str(value))
            argv += ["-o", f"{option}={value}"]
    return argv + [target.data.get("ssh_hostname") or target.name, "--"]


def manage_command(s: AppSettings, args: list[str], sudo: bool) -> str:
    """manage.py `args` in the current release, by release.sh (as the app user, with .env)."""
    words = " ".join(shell_quote(a) for a in args)
    return f"{'sudo -n ' if sudo else ''}{tool_env(s)} {shell_quote(s.release_tool)} manage {words}"


def logs_command(s: AppSettings, since: str | None, lines: int | None, follow: bool, sudo: bool) -> str:
    """journalctl of every unit of the project, as JSON lines (formatted by `log_line`)."""
    options = ["--no-pager", "-q", "-o", "json", "-u", s.unit, "-u", s.unit_socket, "-u", f"{s.project}-job-*",
               *[option for p in s.processes for option in ("-u", s.process_unit(p).replace("@.service", "@*"))]]
    if since:
        options += ["--since", since]
    if lines is not None:
        options += ["-n", str(lines)]
    if follow:
        options.append("-f")
    return f"{'sudo -n ' if sudo else ''}journalctl " + " ".join(shell_quote(o) for o in options)


def log_line(raw: str) -> str:
    """One journal entry as "<time> <unit>: <message>"."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return raw
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # journald gives bytes that are not UTF-8 as a list of numbers
        message = bytes(message).decode(errors="replace")
    when = datetime.datetime.fromtimestamp(int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6)
    unit = entry.get("_SYSTEMD_UNIT") or entry.get("UNIT") or entry.get("SYSLOG_IDENTIFIER", "?")
    return f"{when:%Y-%m-%dT%H:%M:%S} {unit}: {message}"


def run_everywhere(jobs: list[tuple[Target, list[str]]], shape=lambda line: line) -> dict[str, int]:
    """Each job's command on its host at once; each line printed as it comes, "[host] line"
    (stderr to stderr). Returns each host's exit code."""
    printing = threading.Lock()
    codes: dict[str, int] = {}

    def relay(name, stream, out, shaped):
        for line in iter(stream.readline, ""):
            with printing:
                print(f"[{name}] {printable(shaped(line.rstrip(chr(10))))}", file=out, flush=True)

    processes, readers = [], []
    for target, argv in jobs:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, errors="replace")
        processes.append((target, process))
        readers += [threading.Thread(target=relay, args=(target.name, process.stdout, sys.stdout, shape)),
                    threading.Thread(target=relay, args=(target.name, process.stderr, sys.stderr, lambda x: x))]
    for reader in readers:
        reader.start()
    try:
        for target, process in processes:
            codes[target.name] = process.wait()
    except KeyboardInterrupt:
        for _, process in processes:
            process.terminate()
        raise
    for reader in readers:
        reader.join()
    return codes


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                        help="data as pyinfra's --data (e.g. the project when it is not in group_data)")
    parser.add_argument("--sudo", action="store_true", help="the SSH user is not root: run it with sudo")


def _data(pairs: list[str]) -> dict:
    from pyinfra_cli.util import parse_cli_arg

    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--data {pair}: use KEY=VALUE")
        data[key] = parse_cli_arg(value)
    return data


def exec_main(argv: list[str], project_dir: Path) -> int:
    parser = argparse.ArgumentParser(prog="exec.py", description=(
        "Run manage.py in the current release, as the app user with its .env, on one host or every "
        "host of a group. Its output comes line by line, prefixed by host; the exit code is the "
        "command's (the first host's that failed)."))
    parser.add_argument("where", help="a host name, a group, or all")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then manage.py's arguments")
    _common(parser)
    options = parser.parse_args(argv)
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    try:
        if not args:
            raise UsageError("no command: exec.py HOST|GROUP|all -- COMMAND [ARGS...] (e.g. -- migrate --plan)")
        chosen = targets(project_dir, options.where, _data(options.data))
        if len(chosen) == 1 and sys.stdin.isatty() and sys.stdout.isatty():  # a terminal: shell, createsuperuser
            target = chosen[0]
            return subprocess.call(ssh_argv(target, True) + [manage_command(target.settings, args, options.sudo)])
        codes = run_everywhere([(t, ssh_argv(t, False) + [manage_command(t.settings, args, options.sudo)])
                                for t in chosen])
    except (UsageError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = [(name, code) for name, code in codes.items() if code]
    for name, code in failed:
        print(f"[{name}] exited {code}" + (" (ssh could not connect)" if code == 255 else ""), file=sys.stderr)
    return failed[0][1] if failed else 0


def logs_main(argv: list[str], project_dir: Path) -> int:
    parser = argparse.ArgumentParser(prog="logs.py", description=(
        "The journal of every process of the project, on every host (or one host or group), each "
        "line prefixed by host and process."))
    parser.add_argument("where", nargs="?", default="all", help="a host name, a group, or all (default)")
    parser.add_argument("--since", help="journalctl's --since: -10min, today, 2026-12-01 10:00")
    parser.add_argument("-n", "--lines", type=int, help="the last N lines of each host")
    parser.add_argument("-f", "--follow", action="store_true", help="keep showing new lines (Ctrl-C stops)")
    _common(parser)
    for i, word in enumerate(argv[:-1]):  # journalctl's "-10min" is a value, not an option
        if word == "--since" and argv[i + 1].startswith("-"):
            argv = [*argv[:i], f"--since={argv[i + 1]}", *argv[i + 2:]]
            break
    options = parser.parse_args(argv)
    try:
        chosen = targets(project_dir, options.where, _data(options.data))
        lines = options.lines if options.lines is not None or options.since else 20
        jobs = [(t, ssh_argv(t, False) + [logs_command(t.settings, options.since, lines, options.follow, options.sudo)])
                for t in chosen]
        codes = run_everywhere(jobs, shape=log_line)
    except (UsageError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return max(codes.values(), default=0)


def refuse_pyinfra(verb: str) -> None:
    """A verb run by pyinfra as a deploy file: one line saying how to run it."""
    from djdeploy.errors import fail

    fail(f"{verb} is not a pyinfra deploy file: run it with Python, e.g. .venv/bin/python {verb} --help")


def main(verb: str, argv: list[str]) -> int:
    os.environ.setdefault("PYINFRA_YES", "1")  # inventory.py's check: no question is asked
    project_dir = Path(__file__).resolve().parents[2]
    if Path.cwd().resolve() != project_dir:
        print(f"error: run it from the project folder: cd {project_dir}", file=sys.stderr)
        return 2
    return (exec_main if verb == "exec.py" else logs_main)(argv, project_dir)
