"""What runs the app under systemd beside the web unit: the socket that holds its
address (and moving between the seed's ambient mode and socket mode), the process
types' units and instances, and the scheduled jobs' timers."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from djdeploy.config.keys import UNITS
from djdeploy.ops import front
from djdeploy.ops.facts import DirectoryFiles, ProjectProcessUnits, SocketListens
from djdeploy.ops.releases import tool_env
from djdeploy.ops.uploads import upload
from djdeploy.shell import shell_quote

WANTS = f"{UNITS}/multi-user.target.wants"


@operation()
def socket_unit(s, src: str):
    """In socket mode, the socket unit rendered from template `src`; in ambient mode,
    nothing here (`listener` removes a socket unit left from socket mode).

    + s: the host's AppSettings
    + src: the socket unit's template
    """
    if s.listen == "socket":
        yield from upload._inner(src=src, dest=s.socket_file, mode="0644", s=s)


def listen_changes(s) -> bool:
    """The port changes hands in this run: socket mode to ambient mode or back (or a first
    deploy). The listener then changes before any switch, so the unit that says how the
    app gets its port goes in place with it, not with the switch."""
    return (s.listen == "socket") != bool(host.get_fact(File, path=s.socket_file))


def socket_moves(s) -> list:
    """Where the app's socket listens, when it listens, but not at its unix socket (a host
    deployed when gunicorn listened on 127.0.0.1:app_port, or before the front, when the
    socket held the site's port); [] otherwise. Asked as the deploy file is read, before anything changes:
    once the socket's file is rewritten and systemd reloaded, systemd shows the new
    address although the old socket still listens."""
    socket_unit = s.unit_socket
    if s.listen != "socket" or not host.get_fact(SystemdStatus, services=[socket_unit]).get(socket_unit):
        return []
    listens = host.get_fact(SocketListens, unit=socket_unit, service=s.unit)
    return listens if listens != [s.app_socket] else []


@operation()
def listener(s, moving_from: list, front_action: str | None = None):
    """The port is held the way `s.listen` says: by the socket unit, or by gunicorn itself.

    + s: the host's AppSettings
    + moving_from: where the socket listens before this run, when it moves (socket_moves)
    + front_action: how the front takes its configuration (front.follow), as soon as a
      socket that moves has let go of its port, so the front answers at once (on a host
      deployed before the front, the socket held the site's port itself)

    Socket mode: the socket unit is enabled and listening (an app still holding the port
    itself is stopped first). Ambient mode: no socket unit is left to hold the port.
    """
    socket_unit = s.unit_socket
    active = host.get_fact(SystemdStatus, services=[socket_unit]).get(socket_unit)
    enabled = host.get_fact(SystemdEnabled, services=[socket_unit]).get(socket_unit)
    if s.listen == "socket":
        if moving_from:
            front_takes = front.take(s, front_action) if front_action else "true"
            # It listens elsewhere: the socket takes its new port with the app stopped a moment,
            # while the front tries again. The site's port before the front: the front takes
            # it as soon as the socket let go. Another app_port: the front sends to the new
            # one first, and the old socket is stopped once gunicorn took what it queued (what
            # the front sent just before: half a second, then the socket's queue empty).
            stop, then = f"systemctl stop {shell_quote(s.unit)} {shell_quote(socket_unit)}", (
                f"{tool_env(s)} {shell_quote(s.release_tool)} listen && systemctl start {shell_quote(s.unit)}")
            if all(address.startswith("127.0.0.1:") for address in moving_from):
                ports = " ".join(shell_quote(address.rsplit(":", 1)[1]) for address in moving_from)
                drained = f"{tool_env(s)} {shell_quote(s.release_tool)} drained {ports}"
                yield f"{front_takes} && {drained} && {stop} && {then}"
            else:
                yield f"{stop} && {front_takes} && {then}"
        elif not active:  # a port another program holds is named (release.sh listen)
            yield f"{tool_env(s)} {shell_quote(s.release_tool)} listen"
        if not enabled:
            yield f"systemctl enable {shell_quote(socket_unit)}"
    elif active or enabled or host.get_fact(File, path=s.socket_file):
        yield (f"systemctl disable --now {shell_quote(socket_unit)} 2>/dev/null; rm -f {shell_quote(s.socket_file)}; "
               "systemctl daemon-reload")


@operation()
def process_units(s):
    """Each process type's template unit (<project>-<name>@.service) is in place, before the
    switch that restarts its instances; `processes` removes those of types gone.

    + s: the host's AppSettings
    """
    changed = False
    for process, dest in zip(s.running_processes, s.process_unit_files):
        commands = list(upload._inner(src="templates/process.service.j2", dest=dest, mode="0644", s=s,
                                      process=process))
        changed = changed or bool(commands)
        yield from commands
    if changed:
        yield "systemctl daemon-reload"


@operation()
def processes(s):
    """The process types' instances run as data says: name@1..count enabled and running,
    the instances above a count (or of a type no longer there) stopped and disabled, and
    the units of types gone removed. A stop is the unit's: its signal, then stop_timeout.

    + s: the host's AppSettings
    """
    wanted = set(s.process_instances)
    templates = {s.process_unit(p) for p in s.running_processes}
    owned = set(host.get_fact(ProjectProcessUnits, project=s.project))  # another project's are not ours
    extra = [n for n in host.get_fact(DirectoryFiles, path=WANTS)
             if n.split("@", 1)[0] + "@.service" in owned and n not in wanted]
    if extra:
        yield "systemctl disable --now -- " + " ".join(shell_quote(n) for n in extra)
    stale = sorted(owned - templates)
    if stale:
        gone = " ".join(shell_quote(n.replace("@.service", "@*.service")) for n in stale)
        yield f"systemctl stop -- {gone}; rm -f -- " + " ".join(shell_quote(f"{UNITS}/{n}") for n in stale)
        yield "systemctl daemon-reload"
    if not wanted:
        return
    active = host.get_fact(SystemdStatus, services=sorted(wanted))
    enabled = set(host.get_fact(DirectoryFiles, path=WANTS))
    start = [n for n in sorted(wanted) if not active.get(n) or n not in enabled]
    if start:
        yield "systemctl enable --now -- " + " ".join(shell_quote(n) for n in start)


@operation()
def scheduled_jobs(s, timers: list):
    """Each of `timers` is a systemd timer on this host, enabled and waiting, with the service
    it starts (<project>-job-<name>.timer and .service); the project's other job units are gone.

    + s: the host's AppSettings
    + timers: the Timers this host runs (`preflight.timers_here`)

    The service runs `manage.py <command>` through the manage script, in the release
    `current` points at when it starts, as the app user, with the app's .env and sandbox.
    """
    prefix = f"{s.project}-job-"
    wanted = {f"{prefix}{t.name}.{kind}" for t in timers for kind in ("service", "timer")}
    stale = [n for n in host.get_fact(DirectoryFiles, path=UNITS)
             if n.startswith(prefix) and n.endswith((".service", ".timer")) and n not in wanted]
    changed = False
    if stale:
        gone = [n for n in stale if n.endswith(".timer")]
        if gone:
            yield f"systemctl disable --now {' '.join(shell_quote(n) for n in gone)}"
        yield "rm -f -- " + " ".join(shell_quote(f"{UNITS}/{n}") for n in stale)
        changed = True
    for timer in timers:
        for kind in ("service", "timer"):
            commands = list(upload._inner(src=f"templates/job.{kind}.j2", dest=f"{UNITS}/{prefix}{timer.name}.{kind}",
                                          mode="0644", s=s, timer=timer))
            changed = changed or bool(commands)
            yield from commands
    if changed:
        yield "systemctl daemon-reload"
    if not timers:
        return
    yield from timers_waiting([f"{prefix}{t.name}.timer" for t in timers], changed)


def timers_waiting(units: list, changed: bool):
    """The commands that leave each timer of `units` enabled and waiting, restarted if its
    files `changed` (its new schedule)."""
    active = host.get_fact(SystemdStatus, services=units)
    enabled = host.get_fact(SystemdEnabled, services=units)
    for unit in units:
        if changed and active.get(unit):
            yield f"systemctl restart {shell_quote(unit)}"
        if not active.get(unit) or not enabled.get(unit):
            yield f"systemctl enable --now {shell_quote(unit)}"
