"""The fleet's local ACME CA (fleet/acme.py): pebble on 169.254.254.1 only, trusted through
the listener CA it is given, resolving the caller's names, and gone after `stop`.
No fleet needed (root and Debian's pebble are); a few seconds."""

import os
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("pebble") is None,
                                reason="needs root and pebble (`make deps`)")


def get(url, cafile):
    context = ssl.create_default_context(cafile=str(cafile))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                          urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=5) as response:
        return response.read().decode()


def listening(port):
    return subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.fixture
def acme():
    from fleet import acme as fleet_acme

    if fleet_acme.pebble_pid() is not None:
        pytest.skip("a pebble is already running on this machine (`python -m fleet.acme down`)")
    started = fleet_acme.start({"web1.fleet.test": "169.254.1.2"}, validity=120)
    try:
        yield started
    finally:
        fleet_acme.stop()


def test_pebble_serves_acme_on_the_fleet_side_only_and_resolves_the_given_names(acme):
    from fleet.acme import ACME_DIR, FleetError, check_names

    directory = get(acme.directory, acme.ca_root_file)
    assert '"newOrder"' in directory and "https://169.254.254.1:14000/" in directory
    roots = acme.issuing_roots()
    assert roots.startswith("-----BEGIN CERTIFICATE-----") and roots.count("BEGIN CERTIFICATE") == 1
    assert "BEGIN CERTIFICATE" in acme.intermediates()
    for port in (14000, 15000):
        assert [w for w in listening(port) if w.endswith(f":{port}")] == [f"169.254.254.1:{port}"]
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # not a public CA
        get(acme.directory, ssl.get_default_verify_paths().openssl_cafile)

    # The names resolve inside pebble's own mount namespace, not on this machine.
    resolved = subprocess.run(["nsenter", "-t", str(acme.pid), "-m", "getent", "hosts", "web1.fleet.test"],
                              capture_output=True, text=True)
    assert resolved.stdout.split() == ["169.254.1.2", "web1.fleet.test"]
    with pytest.raises(OSError):
        socket.gethostbyname("web1.fleet.test")
    assert '"certificateValidityPeriod": 120' in (ACME_DIR / "pebble.json").read_text()

    with pytest.raises(FleetError, match="not a fleet address"):
        check_names({"web1.fleet.test": "10.0.0.1"})


def test_stop_leaves_nothing_and_a_stale_pebble_is_cleared():
    from fleet import acme as fleet_acme
    from fleet.acme import ACME_DIR

    if fleet_acme.pebble_pid() is not None:
        pytest.skip("a pebble is already running on this machine")
    first = fleet_acme.start({"web1.fleet.test": "169.254.1.2"})
    os.kill(first.pid, 9)  # a killed session: its files stay behind
    os.waitpid(first.pid, 0)
    assert ACME_DIR.exists() and fleet_acme.pebble_pid() is None
    second = fleet_acme.start({"web2.fleet.test": "169.254.1.3"})  # clears it and starts
    assert "BEGIN CERTIFICATE" in second.issuing_roots()
    with pytest.raises(fleet_acme.FleetError, match="already running"):
        fleet_acme.start({"web1.fleet.test": "169.254.1.2"})
    fleet_acme.stop()
    assert not ACME_DIR.exists() and fleet_acme.pebble_pid() is None
    assert not listening(14000) and not listening(15000)
    assert not pebble_processes()


def pebble_processes():
    from fleet.acme import ACME_DIR

    found = []
    for proc in os.scandir("/proc"):
        try:
            with open(os.path.join(proc.path, "cmdline"), "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if b"pebble" in cmdline and str(ACME_DIR).encode() in cmdline:
            found.append(int(proc.name))
    return found
