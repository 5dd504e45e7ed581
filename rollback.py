"""Put every host back on its previous release (or the one given with --data
release=<id>), in batches, through the same health gate as a deploy.

    pyinfra inventory.py rollback.py
    pyinfra inventory.py rollback.py --data release=3f2a1b9c0d4e
"""

from pyinfra import host

from djdeploy import speed_up
from djdeploy.ops import releases
from djdeploy.preflight import app_settings, balancers_of, preflight, rollback_target
from djdeploy.run import lock, rollout

speed_up(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if s.runs_app:  # the database is not rolled back (migrations only ever go forward); a balancer has no release
    target = rollback_target(host, s)  # the previous release, or --data release; checked on every host
    lock.hold(host, root=s.root, path=s.lock_dir, wait=s.lock_wait)

    releases.current_release(
        name="Roll back", s=s, release_id=target, rollback=True, balancers=balancers_of(host.state, s),
        _parallel=rollout.batch_size(len(host.state.inventory), s.batch),
        _if=rollout.nothing_failed(host.state),
    )
