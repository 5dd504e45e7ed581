"""N fake hosts in the `web` group (DJDEPLOY_FAKE_HOSTS, default 8), for controller-side
tests and the benchmark: pyinfra's @fake connector, no servers, instant answers unless
DJDEPLOY_FAKE_DELAY sets a per-command delay; DJDEPLOY_FAKE_REPLY, a file, answers the
batched-facts command (a recorded real host's state)."""

import functools
import os

import pyinfra.api.inventory

# pyinfra reads the installed packages' entry points once per "@connector/..." host name
# to find its connector (over a millisecond a host); SSH hosts do not, so neither do these.
pyinfra.api.inventory.get_all_connectors = functools.cache(pyinfra.api.inventory.get_all_connectors)

_replies = {"python3 --version": ["Python 3.11.2", "x86_64"]}
if os.environ.get("DJDEPLOY_FAKE_REPLY"):
    with open(os.environ["DJDEPLOY_FAKE_REPLY"]) as handle:
        _replies = {"@@B ": handle.read().splitlines(), **_replies}  # first match wins

_delay = float(os.environ.get("DJDEPLOY_FAKE_DELAY", "0"))
web = [(f"@fake/web-{n}", {"fake_delay": _delay, "fake_delay_jitter": 0, "fake_responses": _replies})
       for n in range(1, int(os.environ.get("DJDEPLOY_FAKE_HOSTS", "8")) + 1)]
