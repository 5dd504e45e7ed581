"""Every data key a host may have, in one table: its default, its check, a hint for a
wrong value, and a line of documentation.

group_data/*.py and `--data` set them; `djdeploy.config.settings.parse` checks a host's
data against this table. docs/configuration.md is generated from it
(`python -m djdeploy.config.keys > docs/configuration.md`; a test fails when it is stale).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from djdeploy.config import schema
from djdeploy.errors import DataError

REQUIRED = ("app_user", "port")  # of hosts that run the app
DATABASES = ("sqlite", "postgresql")
DB_PASSWORD = "DATABASE_PASSWORD"  # the secret the role's password comes from
DB_PORT = 5432  # Debian's PostgreSQL, as installed
SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
SAFE_PROJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEALTH_PATH = re.compile(r"^/[A-Za-z0-9_./:@%+,=-]*$")  # a plain URL path
LISTEN_MODES = ("socket", "ambient")
CHECK_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
BATCH = re.compile(r"^([1-9][0-9]*)(%?)$")
SAFE_PATH = re.compile(r"^[A-Za-z0-9_.+@/-]+$")  # srv: no space, quote or shell character
DOTTED = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
SRV = "/srv"
DOMAIN = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"  # a DNS name, lower case
HTTPS_URL = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$"
EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
URL_PATH = r"^/([A-Za-z0-9_.~-]+/)+$"  # /static/, /assets/v2/
TLS_MODES = ("auto", "off")
TIMER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
PROCESS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$")  # a Procfile's names: Heroku's letters
TIMER_COMMAND = r"^[A-Za-z0-9_][A-Za-z0-9_ .=:,/@+-]*$"  # words systemd's ExecStart= and a shell read alike
TIMESPAN = r"^[0-9]+ ?(us|ms|s|sec|m|min|h|hr|d|w)?$"
TIMER_FIELDS = {
    "command": schema.string(TIMER_COMMAND),
    "on_calendar": schema.string(r"^[A-Za-z0-9 :*,./~+-]+$"),
    "persistent": schema.boolean,
    "randomized_delay": schema.string(TIMESPAN),
    "timeout": schema.string(TIMESPAN),
    "host": schema.string(),
}
BACKUP_FIELDS = {
    "schedule": schema.string(r"^[A-Za-z0-9 :*,./~+-]+$"),
    "verify": schema.string(r"^[A-Za-z0-9 :*,./~+-]+$"),
    "keep_daily": schema.integer(0, 3660),
    "keep_weekly": schema.integer(0, 520),
    "keep_monthly": schema.integer(0, 1200),
}
BACKUP_PASSWORD = "BACKUP_PASSWORD"  # the secret restic's repository is encrypted with
ONE_LINE = r"^[^\x00-\x1f\x7f]+$"  # a command line: printable, no line break
PROCESS_FIELDS = {
    "command": schema.string(ONE_LINE),
    "count": schema.integer(0, 32),
    "stop_timeout": schema.integer(1, 86400),
    "stop_signal": schema.one_of("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"),
}
# A path inside a release, for the app to write (linked_files, linked_dirs): words of
# letters, digits, '.', '_', '-', none starting with '.' or '-', and never the release's venv.
RELEASE_PATH = r"^(?!venv(/|$))[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$"
# What production needs, set by the deploy's settings module on top of the app's own
# (templates/settings.py.j2); `keep_app_settings` leaves any of them as the app has it.
OVERRIDES = ("ALLOWED_HOSTS", "DEBUG", "SECRET_KEY", "DATABASES", "STATIC_ROOT", "MEDIA_ROOT",
             "CSRF_TRUSTED_ORIGINS", "LOGGING", "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT",
             "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS")
# The keys an app may set in its own file (djdeploy.toml beside manage.py, or [tool.djdeploy]
# in its pyproject.toml): what the app needs, as against what the fleet decides.
APP_FILE = "djdeploy.toml"
APP_KEYS = ("requirements", "settings_module", "wsgi_module", "health_path", "release_commands", "processes",
            "timers", "debian_packages", "app_env", "keep_app_settings", "serve_files", "static_url",
            "source_builds", "linked_files", "linked_dirs")  # package_indexes: the fleet's (operator's) to allow, never the app's
# What serves an app that names no WSGI application and has no wsgi.py: Django's own, as
# runserver takes it when WSGI_APPLICATION is unset.
DJANGO_WSGI = "django.core.wsgi:get_wsgi_application()"
UP_PATH = "/-/up"  # the deploy's health endpoint, answered before the app's URL routing (files/djdeploy_wsgi.py)
SETTINGS_MODULE = "djdeploy_settings"
UNITS = "/etc/systemd/system"  # where the deploy writes every systemd unit it makes
# What .env holds for the deploy itself (AppSettings.environment): app_env may not replace them.
DEPLOY_VARIABLES = ("VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "DJDEPLOY_APP_WSGI", "PYTHONPATH",
                    "DJDEPLOY_SERVE_FILES", "DJANGO_SECRET_KEY_FILE", "DJDEPLOY_APP_PACKAGE")  # DJANGO_SETTINGS_MODULE on the hosts: imports the app's, then OVERRIDES
# Keys older data may hold, with what to do about each.
REMOVED = {"app_port": "the front reaches gunicorn on a unix socket in /srv/<project>/socket, which no other local "
                       "user can take, not on a TCP port: remove app_port"}
# Data keys that belong to pyinfra or its connectors, not to the deploy.
FOREIGN = ("ssh_", "_", "fake_", "winrm_", "docker_", "podman_", "chroot_", "vagrant_", "terraform_", "local_")


@dataclass(frozen=True)
class Key:
    default: object
    check: schema.Check
    doc: str
    hint: str = ""  # what a right value looks like, for a wrong one's message


KEYS: dict[str, Key] = {
    # The app
    "project": Key("my_awesome_project", schema.string(SAFE_PROJECT.pattern),
                   "names /srv/<project> and <project>.service",
                   "use letters, digits, '_', '.', '-' (it names /srv/<project> and <project>.service)"),
    "app_path": Key("app", schema.string(), "the Django project to deploy (the folder holding manage.py)"),
    "requirements": Key(None, schema.optional(schema.string()),
                        "its requirements file; default: requirements.txt beside manage.py",
                        "a path to a pip requirements file, e.g. requirements = \"app/requirements.txt\""),
    "wsgi_module": Key(None, schema.optional(schema.string(DOTTED[:-1] + r"(:[A-Za-z_][A-Za-z0-9_]*(\(\))?)?$")),
                       "what gunicorn serves; default: the app's WSGI_APPLICATION, else <package>/wsgi.py, else "
                       f"Django's own handler, as runserver uses it ({DJANGO_WSGI})",
                       "a dotted module path, optionally :name or :factory() (project.wsgi, shop.serve:app)"),
    "settings_module": Key(None, schema.optional(schema.string(DOTTED)),
                           "the app's own settings; default: what its manage.py names",
                           "a dotted module path (project.settings)"),
    "keep_app_settings": Key([], schema.list_of(schema.one_of(*OVERRIDES)),
                             "production settings the deploy does not override (see OVERRIDES)",
                             "a list of setting names from: " + ", ".join(OVERRIDES)),
    "serve_files": Key(True, schema.boolean,
                       "the deploy's WSGI entry serves STATIC_URL and MEDIA_URL (False: the app does; the front serves "
                       "STATIC_ROOT either way, never uploads)"),
    "debian_packages": Key([], schema.list_of(schema.string(r"^[a-z0-9][a-z0-9+.-]{1,62}$")),
                           "what the app needs from Debian beyond Python, e.g. [\"gettext\"]",
                           'a list of Debian package names, e.g. ["gettext", "libmagic1"]'),
    "linked_files": Key([], schema.list_of(schema.string(RELEASE_PATH)),
                        "files in the release that the app writes, kept across releases (Capistrano's "
                        "linked_files): each is a link to shared/data/linked/<path>, e.g. [\"huey-stats.db\"]",
                        'a list of paths relative to manage.py\'s folder, e.g. ["huey-stats.db", "var/cache.db"]'),
    "linked_dirs": Key([], schema.list_of(schema.string(RELEASE_PATH)),
                       "folders in the release that the app writes, kept across releases (Capistrano's "
                       "linked_dirs), as linked_files",
                       'a list of paths relative to manage.py\'s folder, e.g. ["var/cache"]'),
    "source_builds": Key([], schema.list_of(schema.string(r"^(\*|[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?)$")),
                         "packages with no wheel that the controller may build from source, in a sandbox "
                         "(bubblewrap: nobody, no home, secrets or SSH key; pure Python only), or [\"*\"] for all; "
                         "any other package without a wheel stops the run (docs/hardening.md)",
                         'a list of package names, e.g. source_builds = ["django-jquery-js"], or ["*"]'),
    "package_indexes": Key([], schema.list_of(schema.string(ONE_LINE)),
                           "the package indexes the requirements file may name itself (--index-url, "
                           "--extra-index-url, --find-links, and their --trusted-host); --no-index when any is "
                           "given; any other index option in it stops the run",
                           'a list of index URLs or --find-links folders, e.g. ["https://pypi.example.com/simple"]'),
    "release_commands": Key([], schema.list_of(schema.string(ONE_LINE)),
                            "manage.py commands run in each new release before it serves, e.g. \"compress\"",
                            'a list of manage.py commands on one line each, e.g. ["compress --force"]'),
    "app_env": Key({}, schema.dict_of(schema.number), "extra variables for .env"),
    "timers": Key({}, schema.dict_of(schema.record(TIMER_FIELDS, required=("command", "on_calendar"))),
                  "scheduled manage.py commands, as systemd timers, each on one host: {name: {command, "
                  "on_calendar, persistent (True), randomized_delay (\"0\"), timeout (\"1h\"), host (default: the "
                  "first host in the inventory that has the timer)}}",
                  'e.g. timers = {"clearsessions": {"command": "clearsessions", "on_calendar": "daily"}}: a name of '
                  "lower-case letters, digits and -; command: a manage.py command and plain words (letters, "
                  "digits, _ . = : , / @ + -); on_calendar: systemd's OnCalendar= (daily, *-*-* 03:00); "
                  "timeout and randomized_delay: a time span (30s, 10min, 1h)"),
    "processes": Key({}, schema.dict_of(schema.record(PROCESS_FIELDS)),
                     "process types beside the web (a task queue's workers...), each count instances of a "
                     "systemd unit on this host, restarted gracefully with each switch: {name: {command, count "
                     "(1; 0 for a Procfile's type data does not name), stop_timeout (30 s: the unit's "
                     "TimeoutStopSec), stop_signal (\"SIGTERM\"))}}; the app's Procfile gives commands too (its web "
                     "line is the deploy's gunicorn, its release line runs once per deploy before the switch)",
                     'e.g. processes = {"worker": {"command": "celery -A shop worker", "count": 2}}: a name of '
                     "letters, digits, _ and -, not web or release; command: one line, run by bash in the "
                     "release with the venv's bin first on PATH; count: 0 to 32"),
    # The service
    "app_user": Key(None, schema.string(), "required: the system user gunicorn runs as"),
    "app_group": Key(None, schema.optional(schema.string()), "defaults to app_user"),
    "port": Key(None, schema.integer(1, 65535),
                "required: the site's HTTP port, on all addresses (the front's: Caddy); with a domain, 80 and 443",
                "a whole number from 1 to 65535, e.g. port = 80"),
    "workers": Key(2, schema.integer(1, 64), "gunicorn worker processes", "a whole number from 1 to 64"),
    "allowed_hosts": Key(None, schema.optional(schema.list_of(schema.string())),
                         "defaults to the host's inventory name, localhost, 127.0.0.1"),
    "description": Key(None, schema.optional(schema.string()),
                       "the unit's Description=; defaults to \"<project> (gunicorn)\""),
    "web": Key(True, schema.boolean,
                "the host serves the site: gunicorn behind its front (Caddy); False: a worker-only host, "
                "which runs the project's processes and timers and answers nothing on 80/443",
                "true, or false for a host that runs only the project's processes and timers"),
    "listen": Key("socket", schema.one_of(*LISTEN_MODES),
                  "\"socket\": systemd holds the port (zero-downtime restarts); \"ambient\": gunicorn binds "
                  "it (AmbientCapabilities, the seed's unit)",
                  'use "socket" (zero-downtime) or "ambient" (the seed\'s AmbientCapabilities unit)'),
    # The front door (Caddy): HTTPS, slow clients, static files and uploads
    "domain": Key(None, schema.optional(schema.string(DOMAIN)),
                  "the site's DNS name: HTTPS on 443 with a certificate from an ACME CA (renewed by Caddy), "
                  "HTTP on 80 redirected to it, HTTP/2; added to allowed_hosts",
                  "a lower-case DNS name such as shop.example.com"),
    "tls": Key("auto", schema.either(schema.one_of(*TLS_MODES),
                                     schema.record({"certificate": schema.string(), "key": schema.string()},
                                                   required=("certificate", "key"))),
               "\"auto\": HTTPS by ACME when there is a domain; \"off\": plain HTTP on port (the seed's port "
               "80); {certificate, key}: your own PEM files (paths on this machine), for the domain",
               '"auto", "off", or {"certificate": "certs/site.pem", "key": "certs/site.key"}'),
    "hsts": Key(0, schema.integer(0, 63072000),
                "seconds of Strict-Transport-Security on HTTPS (0: off; 31536000 is a year)",
                "seconds, a whole number from 0 (off) to 63072000"),
    "acme_ca": Key(None, schema.optional(schema.string(HTTPS_URL)),
                   "the ACME directory this project's certificates come from (default: Let's Encrypt)",
                   "an https:// URL of an ACME directory"),
    "acme_ca_root": Key(None, schema.optional(schema.string()),
                        "a PEM file on this machine that signs acme_ca's own HTTPS (a private CA)"),
    "acme_renew_interval": Key("10m", schema.string(r"^[1-9][0-9]{0,4}(s|m|h)$"),
                               "how often the front checks its certificates for renewal (each is renewed "
                               "in the last third of its life); one per host: the last project deployed sets it", "a Go duration: 30s, 10m, 1h"),
    "acme_email": Key(None, schema.optional(schema.string(EMAIL)),
                      "the ACME account's e-mail (expiry notices)", "an e-mail address"),
    "static_url": Key("/static/", schema.string(URL_PATH),
                      "the URL the front serves STATIC_ROOT at (the app's STATIC_URL); uploads go to the "
                      "app, which serves MEDIA_URL itself (serve_files)", "a path such as /static/"),
    # Releases
    "keep_releases": Key(5, schema.integer(2, 100), "releases kept per host (never deleting current or previous)",
                         "a whole number from 2 to 100"),
    "batch": Key(None, schema.optional(schema.either(schema.integer(1), schema.string(BATCH.pattern))),
                 "hosts that serve switched at once: a count or \"N%\"; default 1 above 2 hosts, else all "
                 "(hosts that serve nothing yet switch together, before them)",
                 "a count of hosts (2) or a share (\"25%\")"),
    "health_path": Key(None, schema.optional(schema.string(HEALTH_PATH.pattern)),
                       "GET after each restart; 200 or the switch is reverted; default: the deploy's own "
                       f"endpoint ({UP_PATH}: the database, then GET / through the app)",
                       "a plain path such as /healthz"),
    "health_host": Key(None, schema.optional(schema.string()),
                       "Host header of that GET; defaults to the first allowed host"),
    "health_timeout": Key(5, schema.integer(1, 300), "seconds per attempt", "seconds, a whole number from 1 to 300"),
    "health_retries": Key(15, schema.integer(1, 600), "attempts, a second apart", "a whole number from 1 to 600"),
    "check_level": Key("ERROR", schema.one_of(*CHECK_LEVELS),
                       "manage.py check --deploy --fail-level before a release serves",
                       "one of " + ", ".join(CHECK_LEVELS)),
    "secret_key_version": Key(1, schema.integer(1, 1_000_000),
                              "raise it by one to rotate the site's SECRET_KEY: a new key on every host of the "
                              "site, the one before kept in SECRET_KEY_FALLBACKS until the next rotation, so no "
                              "session or signed link made before is lost",
                              "a whole number: the one in use plus 1 rotates the key"),
    "without": Key([], schema.list_of(schema.string(r"^[A-Za-z0-9_\[][A-Za-z0-9_.:@\[\]-]*$")),
                   "hosts of the inventory the run may go on without when they do not answer SSH (down for "
                   "now, e.g. --data without='[\"169.254.2.2\"]'): each is named in one line, and the first run "
                   "that reaches it again brings it to the fleet's release; a host not named stops the run",
                   'a list of inventory host names, e.g. ["web3.example.com"]'),
    "lock_wait": Key(30, schema.integer(0, 3600), "seconds a deploy waits for another one's lock on a host",
                     "seconds, a whole number from 0 to 3600"),
    # Secrets, places, rollback
    "required_secrets": Key([], schema.list_of(schema.string(ENV_KEY.pattern)),
                            "names the app needs from secrets/<group>.toml or DJDEPLOY_SECRET_<NAME>"),
    "srv": Key(SRV, schema.string(SAFE_PATH.pattern), "where projects live: /srv/<project>",
               "an absolute folder under /srv, of letters, digits and _ . + @ - (or set allow_outside_srv = True)"),
    "allow_outside_srv": Key(False, schema.boolean, "True to let srv be another absolute folder"),
    "release": Key(None, schema.optional(schema.string(r"^[0-9a-f]{12}$")),
                   "rollback.py: the release to go back to (default: the previous one)",
                   "a release id: 12 hex digits, see status.py"),
    "rollback_data": Key(None, schema.optional(schema.one_of("reverse", "restore")),
                         "rollback.py to a release older than migrations the database has: \"reverse\" (the current "
                         "release runs them backwards, where Django can) or \"restore\" (the backup taken before them; "
                         "data written since is lost); default: stop, naming them",
                         'use "reverse" or "restore"'),
    "backup": Key(None, schema.optional(schema.string(r"^([0-9a-f]{8,64}|[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?)$")),
                  "restore.py: the backup to put back (default: the latest; on PostgreSQL, as the archive's last WAL "
                  "left it)",
                  "a restic snapshot id (8 or more hex digits) or a pgBackRest label (20261207-051500F...), see "
                  "status.py or revisions.log"),
    "restore_to": Key(None, schema.optional(schema.string(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?$")),
                      "restore.py on PostgreSQL: the point in time (UTC) to put the cluster back to",
                      'a UTC time: "YYYY-MM-DD HH:MM:SS"'),
    # The database
    "database": Key(None, schema.optional(schema.one_of(*DATABASES)),
                    "\"sqlite\" (each host its own, in shared/data) or \"postgresql\" (on the database "
                    "server); default: postgresql if the inventory has a server",
                    'use "sqlite" or "postgresql"'),
    "database_server": Key(False, schema.boolean,
                           "True for the db group: runs PostgreSQL for the web hosts, not the app", "True or False"),
    # The load balancer
    "balancer": Key(False, schema.boolean,
                    "True for the lb group: HAProxy spreads the project's web hosts behind the front (Caddy: "
                    "the domain's HTTPS), drained one by one as they switch; runs no app", "True or False"),
    # Uploads everywhere
    "files_server": Key(False, schema.boolean,
                        "True for the files group: holds the project's uploads (MEDIA), which every app host "
                        "writes over SFTP (django-storages) and the balancers serve from it; runs no app",
                        "True or False"),
    # Backups
    "backup_server": Key(False, schema.boolean,
                         "True for the backup group: holds the project's backup repository (restic's, which every "
                         "app host writes over SFTP, encrypted with secret BACKUP_PASSWORD); runs no app",
                         "True or False"),
    "backups": Key({}, schema.record(BACKUP_FIELDS),
                   "when app hosts back up to the backup host (schedule, systemd OnCalendar), when they prove the "
                   "latest backup restores (verify), and what restic keeps (keep_daily, keep_weekly, keep_monthly); "
                   "default: daily, weekly, 7, 4, 6",
                   'e.g. {"schedule": "*-*-* 03:00", "keep_daily": 14}'),
    "migrate_without_backup": Key(False, schema.boolean,
                                  "a deploy migrates although the backup before its migrations failed, or the last "
                                  "verification did (default: it stops, naming why)", "True or False"),
    "balancer_address": Key(None, schema.optional(schema.string(r"^[0-9A-Fa-f.:]+$")),
                            "a balancer: the IP address its connections to the web hosts come from "
                            "(default: its host name, which must then be one)", "an IP address"),
    "db_address": Key(None, schema.optional(schema.string(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")),
                      "database server: where web hosts reach it and it listens (default: its name)",
                      "an IP address or host name"),
    "db_name": Key(None, schema.optional(schema.string(r"^[a-z_][a-z0-9_]{0,62}$")),
                   "the project's database and role; default: the project, as a SQL name",
                   "lower-case letters, digits and _ (a SQL name)"),
}
DEFAULTS = {name: key.default for name, key in KEYS.items()}
DATA = {name: key.check for name, key in KEYS.items()}  # the schema of a host's data
HINTS = {name: key.hint for name, key in KEYS.items() if key.hint}

CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is fine; a line break would end the line
# Linux passes the environment to gunicorn through execve: one variable ("NAME=value") may
# hold at most MAX_ARG_STRLEN (32 pages) bytes with its end byte, or the start fails with
# "Argument list too long"; systemd also refuses long EnvironmentFile= lines.
ENV_VARIABLE_MAX = 131071
ENV_FILE_MAX = 1 << 20  # the whole .env: well inside execve's total for arguments and environment
DATA_STRING_MAX = 4096  # any other string in data (it reaches a unit, a script or a settings file)


def control_character(value: str) -> str | None:
    """The first character that would break a line of a generated file, said for a message
    ("a line break (at character 5)"); None when there is none."""
    match = CONTROL.search(value)
    if not match:
        return None
    what = {"\n": "a line break", "\r": "a carriage return"}.get(match.group(), "a control character")
    return f"{what} (at character {match.start() + 1})"


def check_value(where: str, key: str, value) -> str:
    """`value` as .env can hold it, or a DataError that names the key (never the value)."""
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} must be a string, not {type(value).__name__}: quote it")
    odd = next((c for c in value if (ord(c) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(c) <= 0xFDEF
                or 0xD800 <= ord(c) <= 0xDFFF), None)
    if odd:  # systemd refuses the whole file over one of these
        raise DataError(f"{where}: {key} holds U+{ord(odd):04X}, not a character systemd accepts in "
                        "an environment file: remove it, or base64-encode the value")
    control = control_character(value)
    if control:
        raise DataError(f"{where}: {key} holds {control}, which .env "
                        "cannot hold: keep the value on one line, or base64-encode it")
    size = len(f"{key}={value}".encode())
    if size > ENV_VARIABLE_MAX:
        raise DataError(f"{where}: {key} is {size:,} bytes with its name, more than the {ENV_VARIABLE_MAX:,} one "
                        "environment variable can hold on Linux: keep large data in a file, and put its path here")
    return value


def named_groups(groups) -> list[str]:
    """The groups a user named (group_data/<group>.py), once each, in order: pyinfra also
    puts hosts in a group named after the inventory file, and in connector groups (@fake)."""
    return [g for g in dict.fromkeys(groups) if not g.endswith("inventory") and not g.startswith("@")]


def markdown() -> str:
    """docs/configuration.md: every key, its default and its meaning."""
    lines = ["# Configuration", "",
             "Every data key a host may have. Set them in `group_data/<group>.py` (plain assignments,",
             "`port = 80`), in `group_data/all.py` for every host, or for one run with",
             "`pyinfra inventory.py deploy.py --data key=value`. Any other key is refused, with a",
             "suggestion when it looks like a typo.", "",
             f"Keys marked *app* say what the app needs; the app may carry them itself in `{APP_FILE}` beside",
             "its manage.py (or a `[tool.djdeploy]` table in its pyproject.toml), the same names in TOML:",
             "", "```toml", 'health_path = "/healthz"', 'debian_packages = ["gettext"]', "[processes.worker]",
             'command = "celery -A shop worker"', "```", "",
             "Data (group_data, a host's table in servers.toml, --data) wins over the app file, key by key;",
             "a process type's fields are layered (the app gives the command, data the count per group).", "",
             "Generated from `djdeploy/config/keys.py` (`python -m djdeploy.config.keys > docs/configuration.md`);",
             "`tests/test_docs.py` fails when this file is stale.", "",
             "| key | default | meaning |", "|---|---|---|"]
    for name, key in KEYS.items():
        default = "required" if name in REQUIRED else f"`{key.default!r}`"
        doc = key.doc.replace("|", r"\|")
        lines.append(f"| `{name}`{' (*app*)' if name in APP_KEYS else ''} | {default} | {doc} |")
    lines += ["", "Production settings the deploy sets on top of the app's own (`keep_app_settings`",
              "leaves any of them as the app has it): " + ", ".join(f"`{o}`" for o in OVERRIDES) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
