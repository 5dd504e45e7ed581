"""Deploy a Django project to a fleet of Linux servers under systemd, with pyinfra."""

import os

# The speed-ups (djdeploy/speed) reach into pyinfra's internals; DJDEPLOY_SPEED=off runs
# plain pyinfra, and then nothing under djdeploy/speed is imported.
SPEED = os.environ.get("DJDEPLOY_SPEED", "on").lower() != "off"


def speed_up(host) -> None:
    """This host's facts in one SSH command (those the last run asked), and pyinfra's
    per-operation bookkeeping made cheap, with the same results (djdeploy/speed), when on."""
    if SPEED:
        from djdeploy.speed import factcache

        factcache.install(host)
