"""The balancer: HAProxy, from Debian, on the hosts of the lb group, behind their front.

A balancer host's front (Caddy, as on a web host) answers the site's name (its HTTPS by
ACME) and sends every request to HAProxy on a unix socket only Caddy reaches. HAProxy
spreads them over the project's web hosts (round robin), asks each the deploy's health
check every second (out after 2 failures, back after 2 passes), and sends a GET that no
host took, or that got no answer, to another host.

The rolling deploy drives it: before a web host switches, the run drains it on every
balancer of its project (HAProxy's runtime API: no new requests, and the run waits until
those in flight finished), and puts it back once the host's health gate passed. A host
whose gate failed stays out; the next run puts back a host left drained (`BalancerDrained`).

Why HAProxy, not Caddy's own reverse_proxy: taking a host out and back is a runtime
command, with no reload; Caddy 2.6 can only do it by loading a new configuration, and
its reloads reset connections under load (tests/test_front.py: up to 3 of 7,804 requests
through six reloads). Through a redeploy behind HAProxy no request failed
(tests/test_balancer.py).
"""

from __future__ import annotations

import re

from pyinfra import host, logger
from pyinfra.api import FactBase, FunctionCommand, OperationError, StringCommand, deploy, operation
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files

from djdeploy.config.keys import UNITS
from djdeploy.ops import front, uploads
from djdeploy.ops.system import debian_packages
from djdeploy.shell import privilege, shell_quote

PACKAGES = ["haproxy", "socat"]  # socat: the runtime API's socket, for balancer.sh
UNIT = "haproxy.service"
DROPIN_DIR = f"{UNITS}/haproxy.service.d"
DROPIN = f"{DROPIN_DIR}/djdeploy.conf"
DRAIN_SECONDS = 30  # the longest a switch waits for a drained host's requests in flight


def server_name(name: str) -> str:
    """A web host's server name in HAProxy (letters, digits and _ . : -)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", name)


class BalancerDrained(FactBase):
    """The servers of backend `project` an operator or a run left drained (or in
    maintenance) on this balancer: [server names]; [] when HAProxy is not set up yet."""

    @staticmethod
    def default():
        return []

    def command(self, tool, project):
        return f"if [ -x {shell_quote(tool)} ]; then {shell_quote(tool)} drained {shell_quote(project)}; fi; true"

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


class BalancerServers(FactBase):
    """The servers of backend `project` on this balancer and their status, as HAProxy
    says it: {name: "UP" | "DOWN" | "DRAIN" | "MAINT" | "UP 1/2"...}; {} when not set up."""

    @staticmethod
    def default():
        return {}

    def command(self, tool, project):
        return f"if [ -x {shell_quote(tool)} ]; then {shell_quote(tool)} servers {shell_quote(project)}; fi; true"

    def process(self, output):
        return dict(line.strip().split(" ", 1) for line in output if " " in line.strip())


@deploy("Balancer")
def server(s, servers: list):
    """HAProxy over the project's web hosts (`servers`, preflight.balanced), behind the
    host's front (Caddy), which has the site's name."""
    debian_packages(name="Debian packages", packages=[*PACKAGES, *front.PACKAGES])
    files.directory(name="Balancer folder", path=s.balancer_dir, user="root", group="haproxy", mode="0750")
    files.directory(name="Balancer unit folder", path=DROPIN_DIR, user="root", group="root", mode="0755")
    unit = uploads.upload(name="Balancer unit", src="templates/haproxy.conf.j2", dest=DROPIN, mode="0644", s=s)
    uploads.upload(name="Balancer tool", src="files/balancer.sh", dest=s.balancer_tool, mode="0750")
    site = uploads.upload(name="Balancer site", src="templates/haproxy.cfg.j2", dest=s.balancer_config,
                          group="haproxy", mode="0640", s=s,
                          servers=[(server_name(name), *rest) for name, *rest in servers])
    balancer(name="Balancer running", s=s, restart=unit.will_change, reload=site.will_change)
    rotation(name="Balancer rotation", s=s, servers=servers)
    front.doors(s, *front.configured(s))


@operation()
def balancer(s, restart: bool = False, reload: bool = False):
    """HAProxy runs the deploy's configuration, enabled at boot; after `haproxy -c` has
    checked it, a changed configuration is reloaded (Debian's master-worker mode: the new
    workers take the listeners, the old ones finish their requests), a changed unit
    restarts it. A configuration HAProxy refuses is one line, and the running one stays.

    + s: the balancer host's AppSettings
    + restart: its unit (the drop-in) changed
    + reload: its configuration changed
    """
    check = (f"out=$(haproxy -c -q -f /etc/haproxy/haproxy.cfg -f {shell_quote(s.balancer_dir)} 2>&1) || "
             "{ echo \"the balancer's configuration was refused by haproxy, the running one stays: "
             "$(printf '%s' \"$out\" | grep -iE 'alert|error' | head -n 1 | cut -c1-300)\" >&2; exit 1; }; ")
    failed = (" || { echo \"the balancer (haproxy) did not start: $(journalctl -u haproxy -n 5 -o cat --no-pager "
              "| grep -iE 'alert|error' | tail -n 1 | cut -c1-300) (journalctl -u haproxy)\" >&2; exit 1; }")
    running = host.get_fact(SystemdStatus, services=[UNIT]).get(UNIT)
    if restart or not running:
        yield StringCommand(check + f"{{ systemctl daemon-reload && systemctl restart {UNIT}; }}" + failed)
    elif reload:
        yield StringCommand(check + f"systemctl reload {UNIT}" + failed)
    if not host.get_fact(SystemdEnabled, services=[UNIT]).get(UNIT):
        yield f"systemctl enable {UNIT}"


@operation()
def rotation(s, servers: list):
    """Every web host of the project is in the balancer's rotation, unless its health check
    fails: a host a run left drained (its health gate failed, or the run stopped during
    its switch) is put back; from then on, its health check decides.

    + s: the balancer host's AppSettings
    + servers: the project's web hosts, as `preflight.balanced` lists them
    """
    names = {server_name(name) for name, *_ in servers}
    for drained in host.get_fact(BalancerDrained, tool=s.balancer_tool, project=s.project):
        if drained in names:
            yield f"{shell_quote(s.balancer_tool)} ready {shell_quote(s.project)} {shell_quote(drained)}"


def drain(s, balancers: list) -> list:
    """The commands that take this host out of every balancer in `balancers` (inventory
    names) before its switch, waiting until its requests in flight are done."""
    return [FunctionCommand(_on_balancers, (balancers, s, "drain"), {})] if balancers else []


def ready(s, balancers: list) -> list:
    """The commands that put this host back once its switch passed its health gate."""
    return [FunctionCommand(_on_balancers, (balancers, s, "ready"), {})] if balancers else []


def _on_balancers(state, host, balancers: list, s, verb: str) -> bool:
    """balancer.sh `verb` for this host on each balancer, over the balancer's own SSH
    connection (pyinfra passes `state` and `host`, this web host, by these names). A
    balancer not in this run (--limit, or down and named in `without`) is said in one line
    and left as it is."""
    for name in balancers:
        other = state.inventory.get_host(name)
        if not state.is_host_in_limit(other) or other in state.failed_hosts or not other.connected:
            logger.warning(f"{host.name}: balancer {name} is not in this run: {host.name} switches without "
                           f"being {'drained' if verb == 'drain' else 'put back'} there")
            continue
        seconds = [str(DRAIN_SECONDS)] if verb == "drain" else []
        command = StringCommand(" ".join(shell_quote(w) for w in (s.balancer_tool, verb, s.project,
                                                                   server_name(host.name), *seconds)))
        ok, output = other.run_shell_command(command, print_output=False, print_input=False, **privilege(other))
        said = " ".join(output.stderr_lines).strip()[:300]
        if not ok:
            raise OperationError(f"could not {verb} {host.name} on balancer {name}: {said or 'no reason given'}")
        if said:
            logger.warning(f"{host.name}: balancer {name}: {said}")
    return True
