"""Deploy a Django project to a fleet of Linux servers under systemd, with pyinfra."""

import os

# The speed-ups (djdeploy/speed) reach into pyinfra's internals; DJDEPLOY_SPEED=off runs
# plain pyinfra, and then nothing under djdeploy/speed is imported.
SPEED = os.environ.get("DJDEPLOY_SPEED", "on").lower() != "off"


def speed_up(host, skip_when_settled: bool = False) -> None:
    """This host's facts in one SSH command (those the last run asked), and pyinfra's
    per-operation bookkeeping made cheap, with the same results (djdeploy/speed), when on.
    With `skip_when_settled` (deploy.py): when no host changed since a run that changed
    nothing, and neither did anything on this controller, the rest of the deploy file is
    not run for this host (djdeploy/speed/settled.py)."""
    if SPEED:
        from djdeploy.speed import factcache

        factcache.install(host, skip_when_settled)
