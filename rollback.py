"""Put every host back on its previous release (or the one given with --data
release=<id>), in batches, through the same health gate as a deploy.

A release older than migrations the database has applied stops the rollback, naming them,
unless --data rollback_data says what to do with the data: "reverse" (the current release
runs them backwards first, where Django can) or "restore" (the backup taken before them is
put back first: data written since is lost; on PostgreSQL, the db host's whole cluster;
docs/backups.md).

    pyinfra inventory.py rollback.py
    pyinfra inventory.py rollback.py --data release=3f2a1b9c0d4e
    pyinfra inventory.py rollback.py --data rollback_data=reverse
"""

from pyinfra import host

from djdeploy import speed_up
from djdeploy.ops import backups, pgbackrest, releases
from djdeploy.preflight import app_settings, balancers_of, preflight, rollback_data, rollback_target
from djdeploy.run import lock, rollout

speed_up(host)  # this host's facts in one SSH command (those the last run asked)
preflight(host.state)
s = app_settings(host)
if s.runs_app:  # a balancer has no release
    target = rollback_target(host, s)  # the previous release, or --data release; checked on every host
    how, what = rollback_data(host, s, target)  # migrations it does not know: stop, reverse or restore
    lock.hold(host, root=s.root, path=s.lock_dir, wait=s.lock_wait)

    if how == "reverse":
        releases.migrations_back(name="Migrations run back", s=s, release_id=target, known=what)
    elif how == "restore" and s.database == "postgresql":  # the db host's cluster, from this host
        pgbackrest.restored(name="Backup before the migrations restored", what=what,
                            on=host.state.inventory.get_host(s.db_host),
                            keeper=host.state.inventory.get_host(s.backup_from))
    elif how == "restore":
        backups.restored(name="Backup before the migrations restored", s=s, snapshot=what)

    releases.current_release(
        name="Roll back", s=s, release_id=target, rollback=True, balancers=balancers_of(host.state, s),
        _parallel=rollout.batch_size(len(host.state.inventory), s.batch),
        _if=rollout.nothing_failed(host.state),
    )
