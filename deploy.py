"""Deploy a Django project under systemd: the recipe of "Manage background processes
with Systemd", step by step, on every host of the inventory, as health-gated releases.

    pyinfra inventory.py deploy.py              # deploy
    pyinfra inventory.py deploy.py --dry --diff # show what would change first

A host of the db group runs PostgreSQL for the web hosts instead (djdeploy/ops/postgresql.py).
"""

from pyinfra import host
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from djdeploy import speed_up
from djdeploy.ops import backups, balancer, front, media, pgbackrest, postgresql, releases, services, system, uploads
from djdeploy.preflight import (app_addresses, app_settings, backup_clients, backup_password, balanced, balancers_of,
                                build_release,
                                database_clients, first_app_host, host_python, host_secrets, key_source,
                                migrates_here, preflight, project_backup_password, timers_here)
from djdeploy.run import lock, rollout

speed_up(host, skip_when_settled=True)  # its facts in one SSH command; nothing more if nothing changed
preflight(host.state)  # every host reachable and its data valid, or nothing changes anywhere
s = app_settings(host)  # this host's settings, from group_data/ and --data

if s.database_server:
    # The db group: PostgreSQL, a role and a database per project, open to its web hosts only.
    postgresql.server(s, projects=database_clients(host.state, host.name))
elif s.balancer:
    # The lb group: the front (Caddy: the site's name, its HTTPS) sends every request to
    # HAProxy, which spreads them over the project's web hosts, each health-checked, and
    # drains each before it switches (below, "Switch to the release").
    balancer.server(s, servers=balanced(host.state, s))
elif s.files_server:
    # The files group: the project's uploads, which its app hosts write over SFTP (an account
    # of their own, chrooted, its key made here) and the front serves to the balancers.
    media.server(s, clients=app_addresses(host.state, s))
    if s.restic_backups:
        # The uploads, backed up here to the backup host, as an app host on SQLite does its own.
        system.debian_packages(name="restic", packages=backups.PACKAGES)
        backups.client(s, source=host.state.inventory.get_host(s.backup_from),
                       password=project_backup_password(host.state, s.project))
elif s.backup_server:
    # The backup group: the restic repositories of the project's hosts that write them here
    # over SFTP (an account of their own, chrooted, its key made here), encrypted by them
    # with a password this host never sees; and for a project on PostgreSQL, pgBackRest's
    # repository host, which backs up the db host's cluster and receives its WAL (SSH both
    # ways, each side's key made on it), encrypted with the same BACKUP_PASSWORD.
    clients = backup_clients(host.state, s)
    if clients:
        backups.server(s, clients=clients)
    if s.backup_db:
        pgbackrest.repository(s, db=host.state.inventory.get_host(s.backup_db),
                              password=project_backup_password(host.state, s.project))
else:
    python, machine = host_python(host)
    release = build_release(host, s, python, machine)  # built once per run: code, locked wheels

    # What a stock Debian server lacks: curl for the health check, Caddy for the front door
    # (acl: it alone passes through the project folder), the libraries its locked wheels
    # load from the host (libpq5 for plain psycopg), and what the app says it needs
    # (debian_packages); restic for backups.
    system.debian_packages(name="Debian packages",
                               packages=list(dict.fromkeys(["curl",
                                                            *(front.PACKAGES if s.web else ()),
                                                            *(backups.PACKAGES if s.restic_backups else ()),
                                                            *release.packages, *s.debian_packages])))

    # One deploy at a time per host: the lock is held while this run executes.
    lock.hold(host, root=s.root, path=s.lock_dir, wait=s.lock_wait)

    # The app runs as its own system user, without a login shell.
    system.system_group(name="App group", group=s.group, user=s.user)
    system.system_user(name="App user", user=s.user, group=s.group, home=s.root)

    # /srv/<project>: root's, readable by the app; the front alone may pass through to the
    # release's static files. shared/ outlives releases; shared/data and shared/media are
    # the only places the app writes.
    files.directory(name="Project folder", path=s.root, user="root", group=s.group, mode="0750")
    if s.web:
        front.passage(name="Front's passage", path=s.root)
    files.directory(name="Releases folder", path=s.releases_dir, user="root", group="root", mode="0755")
    files.directory(name="Shared folder", path=s.shared_dir, user="root", group=s.group, mode="0750")
    files.directory(name="Data folder", path=s.data_dir, user=s.user, group=s.group, mode="0750")
    files.directory(name="Uploads folder", path=s.media_dir, user=s.user, group=s.group, mode="0750")
    # The app's socket: gunicorn's address behind the front, which no other local user can
    # take or reach (the project folder is closed to them); the front alone passes.
    files.directory(name="Socket folder", path=s.socket_dir, user=s.user, group=s.group, mode="0750")
    if s.web:
        front.passage(name="Front's passage to the socket", path=s.socket_dir)

    # The virtualenv, filled offline from wheels built once on this controller (by a pinned
    # pip from outside it); one per set of requirements, so a code-only release reuses it.
    releases.wheelhouse(name="Wheelhouse", src=release.wheels, dest=s.wheels_dir)
    venv = releases.virtualenv(
        name="Virtualenv", path=f"{s.venvs_dir}/{release.venv}", wheels_dir=s.wheels_dir, src=release.wheels,
        installer=release.installer, installer_dir=s.installer_dir,
    )

    # The files the app reads at start: a new content waits beside the old one (<name>.next)
    # until the switch moves it in with its release, so a run that stops early, or a host
    # that never switches, keeps files and release that belong together.
    releases.leftovers_cleared(name="Files a stopped run left", s=s)

    # .env: VIRTUAL_ENV, DJANGO_SETTINGS_MODULE, the app's settings and its secrets. Sent over
    # SSH's stdin, never shown: a dry run names the keys that change, not their values.
    env = uploads.env_file(name=".env", s=s, src="templates/env.j2", secrets=host_secrets(host, s))
    # SECRET_KEY: made on the host at the first deploy; the hosts of one site (sharing its
    # database) all have the key of its first host, so a session holds on every one of them.
    source = key_source(host, s)
    key = uploads.secret_key(name="Secret key", path=s.secret_key_file, group=s.group,
                             fallbacks=s.secret_key_fallbacks_file, version=s.secret_key_version,
                             _if=lambda: source in (None, host.name))
    shared_key = uploads.shared_secret_key(name="Shared secret key", s=s, source=source)
    if s.uploads_host:
        # Uploads go to the site's files host over SFTP: its account's key (made there),
        # and its SSH host key, which the app checks.
        media.client(s, source=host.state.inventory.get_host(s.uploads_from))

    # The run script: load .env, exec gunicorn from the virtualenv (of the current release).
    run = uploads.upload(
        name="run script", src="templates/run.j2", dest=f"{s.root}/run", group=s.group, mode="0750",
        staged=True, s=s,
    )
    # The manage script: the same, for manage.py (what scheduled jobs run).
    uploads.upload(name="manage script", src="templates/manage.j2", dest=f"{s.root}/manage", group=s.group,
                      mode="0750", s=s)
    # The process script: the same, for the app's other process types (workers...).
    process = uploads.upload(name="process script", src="templates/process.j2", dest=s.process_script,
                                group=s.group, mode="0750", staged=True, s=s)
    # The app's own settings with what production needs on top (ALLOWED_HOSTS, DEBUG off, the
    # host's key, the database and uploads in shared/, ...), and the WSGI entry that adds
    # the health endpoint: the app itself is not edited.
    files.directory(name="Django folder", path=s.django_dir, user="root", group=s.group, mode="0750")
    django_settings = uploads.upload(
        name="Django settings", src="templates/settings.py.j2", dest=s.settings_file, group=s.group,
        mode="0640", staged=True, s=s, py=repr,
    )
    wsgi = uploads.upload(
        name="WSGI entry", src="files/djdeploy_wsgi.py", dest=s.wsgi_file, group=s.group, mode="0640",
        staged=True,
    )
    gunicorn = uploads.upload(
        name="gunicorn settings", src="files/gunicorn.conf.py", dest=s.gunicorn_config, group=s.group,
        mode="0640", staged=True,
    )

    if s.restic_backups:
        # Backups to the backup host (SQLite and uploads): the tool, its key and password
        # (root's alone), a timer that backs up and one that proves the latest restores.
        backups.client(s, source=host.state.inventory.get_host(s.backup_from), password=backup_password(host))

    # The release: unpacked, checked, backed up if it migrates, migrated and collected
    # before it can serve.
    uploads.upload(name="Release tool", src="files/release.sh", dest=s.release_tool, mode="0750")
    # The app's sandbox, as the release tool runs each step of the app's code (checks,
    # migrate, collectstatic, release commands, exec.py) in a unit of its own.
    uploads.upload(name="Release step sandbox", src="templates/sandbox.j2", dest=s.step_sandbox, mode="0644", s=s)
    releases.release(name="Release", s=s, release_id=release.id, archive=release.archive, venv=release.venv)
    # PostgreSQL: migrated once, by one host, when every host has the release and before any switches.
    postgresql.migrations(name="Migrations", s=s, release_id=release.id, here=migrates_here(host, s),
                          keeper=host.state.inventory.get_host(s.backup_from) if s.backup_from else None)
    # The Procfile's release line, once per deploy, on the first app host, before any switch.
    releases.procfile_release(name="Release command", s=s, release_id=release.id,
                               here=host.name == first_app_host(host.state, s))

    # A worker-only host (web = False) runs the project's processes and timers, nothing else:
    # no gunicorn, no front, nothing on 80/443.
    unit = socket = listener = None
    follow, starts, moves = None, False, []
    if s.web:
        # The systemd unit (it waits for the switch too, unless the port changes hands: socket
        # <-> ambient), and in socket mode the socket that holds the port across restarts.
        unit = uploads.upload(
            name="systemd unit", src="templates/app.service.j2", dest=s.unit_file, mode="0644",
            staged=not services.listen_changes(s), s=s,
        )
        socket = services.socket_unit(name="systemd socket", s=s, src="templates/app.socket.j2")
        systemd.daemon_reload(name="Reload systemd", _if=any_changed(unit, socket))
    # Each process type's unit (<project>-<name>@.service), whose instances the switch restarts.
    process_units = services.process_units(name="Process units", s=s)
    if s.web:
        # The front door (Caddy): the world's HTTP on port (with a domain, HTTPS on 443 with a
        # certificate by ACME, and 80 redirected), static files and uploads; the rest goes to
        # gunicorn on its unix socket. A changed configuration is reloaded gracefully.
        front_unit, front_files = front.configured(s)
        # A socket that listens elsewhere (a new app_port, or the site's port before the front)
        # moves now, and the front takes its configuration the moment the socket let go; a
        # front that does not run yet starts as soon as this host switched (the seed's unit
        # held the site's port itself until then).
        follow = front.follow(s, restart=front_unit.will_change)
        moves, starts = services.socket_moves(s), not front.running()
        listener = services.listener(name="Listening socket", s=s, moving_from=moves,
                                     front_action=follow if moves else None)

    # Switch to the release with the files that wait for it; restart when something the
    # service runs changed. Each switch is health-gated and reverted on failure (release and
    # files). Hosts that serve nothing yet switch together, first: no batch keeps a site up
    # that is not up. Then the hosts that serve, a batch at a time; a failed switch, there
    # or before, stops the batches after it.
    switch = dict(s=s, release_id=release.id,
                  restart_if=rollout.changed(venv, env, key, shared_key, run, process, django_settings, wsgi, gunicorn,
                                             unit, socket, process_units, listener),
                  front_action=follow if starts and not moves else None,
                  balancers=balancers_of(host.state, s) if s.web else (),  # the balancers know web hosts only
                  _if=rollout.nothing_failed(host.state))
    if not releases.serving(s):
        releases.current_release(name="First switch, together", **switch)
    else:
        releases.current_release(name="Switch to the release", **switch,
                                 _parallel=rollout.batch_size(len(host.state.inventory), s.batch))

    if s.web:
        up = systemd.service(name="Enable and start the app", service=s.unit, running=True, enabled=True,
                             _if=rollout.nothing_failed(host.state))
        releases.started(name="The app serves the release", s=s, release_id=release.id, _if=up.did_change)
        # The front door, now the app serves: a changed configuration reloaded gracefully (the
        # unit changed: restarted), unless it took it already (above).
        taken = bool(moves) or starts
        front.front_door(name="Front door restarted", s=s, restart=True, _if=[front_unit.did_change, lambda: not taken])
        front.front_door(name="Front door reloaded", s=s, reload=True,
                         _if=[any_changed(*front_files), lambda: not front_unit.did_change(), lambda: not taken])
        front.front_door(name="Front door running", s=s)

    # The process types' instances: as many as data says (scaled up or down), each enabled.
    services.processes(name="Processes", s=s, _if=rollout.nothing_failed(host.state))

    # Scheduled jobs (timers in data): systemd timers that run manage.py in the current
    # release, each on one host of the fleet.
    services.scheduled_jobs(name="Scheduled jobs", s=s, timers=timers_here(host, s),
                              _if=rollout.nothing_failed(host.state))
    releases.releases_pruned(name="Old releases", s=s, keep=s.keep_releases, release_id=release.id)

if s.backup_db or (s.database_server and s.backup_host):
    # PostgreSQL's backups, in one step of both hosts once each has its key: each lets the
    # other's pgBackRest in; then the backup host makes the stanza with a first full backup,
    # and the timers that back up and prove the latest backup restores.
    pgbackrest.linked(s, peer=host.state.inventory.get_host(s.backup_db or s.backup_from))
