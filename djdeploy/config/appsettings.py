"""What a host gets once its data is checked (`settings.parse`): an `AppSettings`, with every
path derived from the data; its timers and process types; and the rollout's batch size."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from djdeploy.config.keys import OVERRIDES, SETTINGS_MODULE, SRV, UNITS
from djdeploy.shell import shell_quote


@dataclass(frozen=True)
class SftpAccount:
    """An SFTP-only account on a files or backup host, chrooted to `root` (root's), whose
    key is made there and authorized from the project's app hosts alone."""

    user: str
    root: str
    purpose: str  # "uploads" or "backups": names its sshd rules and its key's comment
    umask: str  # what the account writes: 0027 (the front reads uploads), 0077
    project: str

    @property
    def key(self) -> str:
        """Its SSH key pair, made on that host (root's alone there)."""
        return f"{self.root}.key"

    @property
    def authorized(self) -> str:
        """Its authorized key (from the app hosts only): sshd's AuthorizedKeysFile."""
        return f"{self.root}.authorized"

    @property
    def dropin(self) -> str:
        return f"/etc/ssh/sshd_config.d/djdeploy-{self.purpose}-{self.project}.conf"


@dataclass(frozen=True)
class Backups:
    """Data's `backups`: when the app hosts back up (systemd OnCalendar), when they check the
    latest backup restores, and how many snapshots restic's forget keeps."""

    schedule: str = "daily"
    verify: str = "weekly"
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6


@dataclass(frozen=True)
class Timer:
    """A scheduled manage.py command (data: timers): a systemd timer and its service."""

    name: str
    command: str
    on_calendar: str
    persistent: bool = True
    randomized_delay: str = "0"
    timeout: str = "1h"
    host: str | None = None  # None: the first host of the inventory that has it


@dataclass(frozen=True)
class Process:
    """A process type beside the web (data: processes, or the app's Procfile): `count`
    instances of the unit <project>-<name>@.service, restarted with each switch."""

    name: str
    command: str
    count: int = 1
    stop_timeout: int = 30
    stop_signal: str = "SIGTERM"

    @property
    def quoted(self) -> str:
        """The command as one shell word (the process script hands it to bash)."""
        return shell_quote(self.command)


@dataclass(frozen=True)
class AppSettings:
    """What one host gets, with every path derived from the data."""

    project: str
    app_path: Path
    requirements: Path
    wsgi_module: str
    settings_module: str
    app_env: dict
    user: str
    group: str
    port: int
    workers: int
    allowed_hosts: tuple
    description: str
    listen: str
    keep_releases: int
    batch: str | None
    health_path: str
    health_host: str
    health_timeout: int
    health_retries: int
    check_level: str
    lock_wait: int
    release: str | None
    backup: str | None = None  # restore.py: the backup to put back
    restore_to: str | None = None  # restore.py on PostgreSQL: the time to go back to
    required_secrets: tuple = ()
    srv: str = SRV
    database: str = "sqlite"
    database_server: bool = False  # this host runs PostgreSQL for the others, not the app
    balancer: bool = False  # this host spreads the project's web hosts (HAProxy), not the app
    balancer_address: str | None = None  # where a balancer's connections come from (default: its name)
    files_server: bool = False  # this host holds the project's uploads (SFTP in, HTTP out), not the app
    uploads_host: str | None = None  # app hosts, balancers: the files host's address (uploads there)
    uploads_from: str | None = None  # app hosts: the files host's inventory name
    uploads_port: int = 80  # balancers: the port the files host serves uploads on
    backup_server: bool = False  # this host holds the project's backup repository (SFTP in), not the app
    backup_host: str | None = None  # app hosts, db host: the backup host's address (restic's SFTP, pgBackRest)
    backup_from: str | None = None  # app hosts, db host: the backup host's inventory name
    backup_db: str | None = None  # backup host of a PostgreSQL project: the db host's inventory name
    backup_db_address: str | None = None  # ... and where it reaches it (pgBackRest's pg1-host)
    backups: Backups | None = None  # data's backups, with defaults
    migrate_without_backup: bool = False  # a deploy migrates although its backup (or the last check) failed
    rollback_data: str | None = None  # rollback.py past migrations: "reverse" or "restore" (else it stops)
    behind: tuple = ()  # web host: the addresses of the project's balancers (lb group) it serves
    db_name: str = ""
    db_host: str | None = None  # the database server's inventory name (postgresql)
    db_address: str | None = None  # where PostgreSQL listens and the web hosts reach it
    keep_app_settings: tuple = ()  # OVERRIDES the deploy leaves as the app has them
    release_commands: tuple = ()  # manage.py commands, each shell-quoted words
    debian_packages: tuple = ()  # the app's own needs from Debian
    serve_files: bool = True
    web: bool = True  # False: a worker-only host (processes and timers, no gunicorn, no front)
    without: tuple = ()  # hosts the run may go on without when they do not answer SSH
    secret_key_version: int = 1  # raised: the site's key is rotated (the one before kept as a fallback)
    timers: tuple = ()  # Timer, by name
    processes: tuple = ()  # Process, by name
    procfile_release: str | None = None  # the Procfile's release line: once per deploy, before the switch
    domain: str | None = None
    tls: str = "off"  # "acme", "files" (tls_files) or "off": what the front serves HTTPS with
    tls_files: tuple = ()  # (certificate, key): paths on the controller
    hsts: int = 0
    acme_ca: str | None = None
    acme_ca_root: str | None = None  # a path on the controller
    acme_email: str | None = None
    acme_renew_interval: str = "10m"
    static_url: str = "/static/"
    source_builds: tuple = ()  # packages the controller may build from source, in a sandbox ("*": all)
    package_indexes: tuple = ()  # indexes the requirements file may name itself
    app_package: str = ""  # the package the project imports its own folder as (discover.own_package)
    linked_files: tuple = ()  # release paths kept in shared/data/linked, writable by the app
    linked_dirs: tuple = ()

    @property
    def linked(self) -> tuple:
        """The release's paths linked to shared/data/linked, as release.sh reads them:
        ("file <path>", "dir <path>")."""
        return (*(f"file {p}" for p in self.linked_files), *(f"dir {p}" for p in self.linked_dirs))

    @property
    def runs_app(self) -> bool:
        """The host runs the project (not a database server, a balancer or a files host)."""
        return not (self.database_server or self.balancer or self.files_server or self.backup_server)

    @property
    def front_tls(self) -> bool:
        """This host's front terminates HTTPS (a web host behind a balancer, or a files host,
        serves the balancer HTTP)."""
        return self.https and not self.behind and not self.files_server

    @property
    def https(self) -> bool:
        """The front serves HTTPS (a domain, with a certificate by ACME or from files)."""
        return self.tls != "off"

    @property
    def process_script(self) -> str:
        """What every process type's units start: the command, in the release, with .env."""
        return f"{self.root}/process"

    def process_unit(self, process) -> str:
        """The template unit of a process type; its instances are <project>-<name>@N.service."""
        return f"{self.project}-{process.name}@.service"

    @property
    def running_processes(self) -> tuple:
        """The process types this host runs: a count above 0 (a Procfile's or the app file's
        type runs where data gives it one; elsewhere it has no unit at all)."""
        return tuple(p for p in self.processes if p.count > 0)

    @property
    def process_unit_files(self) -> tuple:
        return tuple(f"{UNITS}/{self.process_unit(p)}" for p in self.running_processes)

    @property
    def process_instances(self) -> tuple:
        """Every process instance this host runs, e.g. ("shop-worker@1.service", ...)."""
        return tuple(self.process_unit(p).replace("@.service", f"@{n}.service")
                     for p in self.processes for n in range(1, p.count + 1))

    @property
    def front_dir(self) -> str:
        """The front's configuration (Caddy's): the host's Caddyfile, each project's site."""
        return "/etc/caddy/djdeploy"

    @property
    def caddyfile(self) -> str:
        return f"{self.front_dir}/Caddyfile"

    @property
    def front_tool(self) -> str:
        """files/front.sh, beside the configuration it makes Caddy take."""
        return f"{self.front_dir}/front.sh"

    @property
    def site_file(self) -> str:
        return f"{self.front_dir}/sites/{self.project}.caddy"

    @property
    def front_dropin_dir(self) -> str:
        """Where Caddy's unit takes drop-ins."""
        return f"{UNITS}/caddy.service.d"

    @property
    def front_dropin(self) -> str:
        return f"{self.front_dropin_dir}/djdeploy.conf"

    @property
    def certificate_file(self) -> str:
        return f"{self.front_dir}/certs/{self.project}.pem"

    @property
    def key_file(self) -> str:
        return f"{self.front_dir}/certs/{self.project}.key"

    @property
    def acme_root_file(self) -> str:
        """acme_ca_root where Caddy reads it: one per project, as each site names its own CA."""
        return f"{self.front_dir}/certs/{self.project}-acme-ca-root.pem"

    @property
    def site_address(self) -> str:
        """The front's site: the domain (HTTPS, and HTTP redirected) or plain HTTP on port."""
        return self.domain if self.front_tls else f"http://:{self.port}"

    @property
    def overrides(self) -> tuple:
        """The production settings the deploy sets on top of the app's (OVERRIDES, less those kept)."""
        return tuple(name for name in OVERRIDES if name not in self.keep_app_settings)

    @property
    def root(self) -> str:
        return f"{self.srv.rstrip('/')}/{self.project}"

    @property
    def releases_dir(self) -> str:
        return f"{self.root}/releases"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def venvs_dir(self) -> str:
        return f"{self.root}/venvs"

    @property
    def installer_dir(self) -> str:
        """pip, unpacked: what fills each virtualenv from the wheelhouse (build.installer)."""
        return f"{self.root}/installer"

    @property
    def wheels_dir(self) -> str:
        return f"{self.root}/wheels"

    @property
    def shared_dir(self) -> str:
        return f"{self.root}/shared"

    @property
    def data_dir(self) -> str:
        return f"{self.shared_dir}/data"

    @property
    def csrf_origins(self) -> list:
        """The origins CSRF trusts: every allowed host (a leading dot: its subdomains), by
        http on the app's port and by https."""
        port = "" if self.port == 80 or self.https else f":{self.port}"
        names = [("*" + h if h.startswith(".") else h) for h in self.allowed_hosts if h != "*"]
        plain = [] if self.https else [f"http://{h}{port}" for h in names]  # HTTPS hosts redirect plain HTTP
        return plain + [f"https://{h}" for h in names]

    @property
    def socket_dir(self) -> str:
        """The app's socket's folder: the app user's, which only the front may pass (not
        run: that is the seed's run script)."""
        return f"{self.root}/socket"

    @property
    def uploads_user(self) -> str:
        """A files host: the project's SFTP-only account, which the app hosts write uploads as."""
        return "up-" + re.sub(r"[^a-z0-9_-]", "-", self.project.lower())[:28]

    @property
    def uploads_root(self) -> str:
        """A files host: the account's chroot (root's); the uploads are in its media/."""
        return f"/srv/uploads/{self.project}"

    @property
    def uploads_account(self) -> "SftpAccount":
        """A files host: the SFTP-only account the app hosts write uploads as."""
        return SftpAccount(self.uploads_user, self.uploads_root, "uploads", "0027", self.project)

    @property
    def backup_account(self) -> "SftpAccount":
        """A backup host: the SFTP-only account the app hosts keep the repository with."""
        user = "bk-" + re.sub(r"[^a-z0-9_-]", "-", self.project.lower())[:28]
        return SftpAccount(user, f"/srv/backups/{self.project}", "backups", "0077", self.project)

    @property
    def backup_dir(self) -> str:
        """App hosts: the backup tool, its configuration, the repository's key, password and
        SSH key, and its scratch space: root's alone (the app may not reach its backups)."""
        return f"{self.root}/backup"

    @property
    def backup_tool(self) -> str:
        return f"{self.backup_dir}/backup.sh"

    @property
    def app_units(self) -> tuple:
        """Every unit that runs the app's code for good on this host: its socket (socket mode),
        its web unit, its process instances (what a restore stops while the data moves)."""
        web = ((self.unit_socket,) if self.listen == "socket" else ()) + (self.unit,) if self.web else ()
        return (*web, *self.process_instances)

    @property
    def restic_backups(self) -> bool:
        """A host that backs up with restic: an app host on SQLite (its data and uploads), a
        files host (the uploads). On PostgreSQL the db host's cluster is pgBackRest's
        (djdeploy.ops.pgbackrest)."""
        return bool(self.backup_host) and (self.files_server or (self.runs_app and self.database != "postgresql"))

    @property
    def backup_writes(self) -> str:
        """Where the backup tool writes besides its folder: the stage and a restore's moves."""
        return self.uploads_root if self.files_server else self.shared_dir

    @property
    def backup_units(self) -> tuple:
        """The scheduled backup's and the verification's services (each with a .timer)."""
        return (f"{self.project}-backup.service", f"{self.project}-backup-verify.service")

    @property
    def uploads_key(self) -> str:
        """App hosts: the account's key, copied from the files host (0640, the app reads it)."""
        return f"{self.shared_dir}/uploads_key"

    @property
    def uploads_known_hosts(self) -> str:
        """App hosts: the files host's SSH host key, which SFTP checks."""
        return f"{self.shared_dir}/uploads_known_hosts"

    @property
    def balancer_dir(self) -> str:
        """A balancer's configuration (HAProxy's): each project's file, and the deploy's tool."""
        return "/etc/haproxy/djdeploy"

    @property
    def balancer_config(self) -> str:
        return f"{self.balancer_dir}/{self.project}.cfg"

    @property
    def balancer_tool(self) -> str:
        return f"{self.balancer_dir}/balancer.sh"

    @property
    def balancer_socket(self) -> str:
        """Where a balancer's HAProxy takes the project's requests from its front (Caddy alone)."""
        return f"/run/haproxy/djdeploy-{self.project}.sock"

    @property
    def app_socket(self) -> str:
        """Where gunicorn listens behind the front: a unix socket no other local user can
        take (the project folder is closed to them), held by systemd in socket mode."""
        return f"{self.socket_dir}/gunicorn.sock"

    @property
    def media_dir(self) -> str:
        return f"{self.shared_dir}/media"

    @property
    def django_dir(self) -> str:
        """The deploy's Python modules for the app: its settings and its WSGI entry."""
        return f"{self.root}/django"

    @property
    def settings_file(self) -> str:
        return f"{self.django_dir}/{SETTINGS_MODULE}.py"

    @property
    def wsgi_file(self) -> str:
        return f"{self.django_dir}/djdeploy_wsgi.py"

    @property
    def env_file(self) -> str:
        return f"{self.shared_dir}/.env"

    @property
    def secret_key_file(self) -> str:
        return f"{self.shared_dir}/secret_key"

    @property
    def secret_key_files(self) -> tuple:
        """The key and the one before it: what the site's hosts share."""
        return (self.secret_key_file, self.secret_key_fallbacks_file)

    @property
    def secret_key_fallbacks_file(self) -> str:
        """The key before the last rotation (SECRET_KEY_FALLBACKS), until the next one."""
        return f"{self.shared_dir}/secret_key_fallbacks"

    @property
    def step_sandbox(self) -> str:
        """The app's sandbox (templates/sandbox.j2) as properties of the release tool's steps."""
        return f"{self.root}/sandbox.conf"

    @property
    def release_tool(self) -> str:
        return f"{self.root}/release.sh"

    @property
    def lock_dir(self) -> str:
        return f"{self.root}/.deploy-lock"

    @property
    def gunicorn_config(self) -> str:
        return f"{self.root}/gunicorn.conf.py"

    @property
    def config_files(self) -> tuple:
        """Every file the app reads when it starts: a change to one owes a restart."""
        return (self.env_file, self.secret_key_file, self.secret_key_fallbacks_file, f"{self.root}/run", self.gunicorn_config,
                self.unit_file, self.socket_file, self.settings_file, self.wsgi_file, self.process_script,
                *self.process_unit_files)

    @property
    def unit(self) -> str:
        return f"{self.project}.service"

    @property
    def unit_file(self) -> str:
        return f"{UNITS}/{self.unit}"

    @property
    def unit_socket(self) -> str:
        return f"{self.project}.socket"

    @property
    def socket_file(self) -> str:
        return f"{UNITS}/{self.unit_socket}"

    @property
    def environment(self) -> dict:
        """Everything .env holds, in order."""
        env = {
            "VIRTUAL_ENV": f"{self.current}/venv",  # the run script pins the release it starts
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,  # the app's own, then what production needs
            "DJDEPLOY_APP_WSGI": self.wsgi_module,  # what the deploy's WSGI entry serves
            "PYTHONPATH": self.django_dir,  # where those two modules are
            "DJDEPLOY_SERVE_FILES": "1" if self.serve_files else "0",  # static files and uploads
            "DJANGO_SECRET_KEY_FILE": self.secret_key_file,
            "DJANGO_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "PYTHONUNBUFFERED": "1",  # every line in the journal as it is printed (app_env may say 0)
        }
        if self.app_package:  # the deploy's settings import the release under this name
            env["DJDEPLOY_APP_PACKAGE"] = self.app_package
        if self.database != "postgresql":  # postgresql: DATABASE_URL, with the secrets
            env["DJANGO_DB_PATH"] = f"{self.data_dir}/db.sqlite3"
        env.update(self.app_env)
        return env


def batch_size(total: int, batch: str | None) -> int:
    """Hosts per batch: a count ("2"), a share ("25%"), or by default 1 above 2 hosts."""
    if batch is None:
        return 1 if total > 2 else max(total, 1)
    if batch.endswith("%"):
        return max(1, min(math.ceil(total * int(batch[:-1]) / 100), total))  # 150%: every host
    return max(1, min(int(batch), total))
