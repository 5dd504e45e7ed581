#!/bin/bash
# The host side of a release, one command per step, called by the deploy:
#   release.sh prepare ID ARCHIVE VENV   unpack beside, check, migrate, collectstatic, the app's
#                                        release commands, then move in
#   release.sh switch ID [rollback]      point `current` at ID, restart, health gate, revert on failure
#   release.sh prune KEEP                keep KEEP releases (never `current` or `previous`)
#   release.sh started ID                the deploy started the stopped app in ID: it serves these files
#   release.sh migrate ID LOCK           the shared database's migrations, under advisory lock LOCK
#   release.sh health                    one GET of the health check: its status code, or "none"
#   release.sh listen                    socket mode: the socket unit holds the port (the app stopped first)
#   release.sh drained PORT...           wait (up to 5.5 s) until 127.0.0.1:PORT queues no connection
#   release.sh manage ARGS...            manage.py ARGS in the current release, as the app user (exec.py)
#   release.sh migrations ID             the migrations the database has applied that release ID does not
#                                        know ("unknown APP.NAME"), and each such app's last one it knows
#                                        ("known APP NAME", NAME zero for none): what a rollback to ID meets
#   release.sh unmigrate ID APP NAME...  the current release runs each APP's migrations back to NAME (rollback.py)
#   release.sh remigrate ID              release ID, prepared before, migrates again (SQLite) if it must
# Settings come from the environment the deploy sets: ROOT UNIT APP_USER SOCKET WSGI
# HTTPS WEB CHECK_LEVEL HEALTH_PATH HEALTH_HOST HEALTH_TIMEOUT HEALTH_RETRIES ORIGIN CONFIG_FILES DJANGO_DIR
# DATABASE RELEASE_COMMANDS PROCESSES LINKED STATIC_DIR RELEASE_COMMAND BACKUP MIGRATE_WITHOUT_BACKUP.
# The files the app reads at start (CONFIG_FILES) that this run changed wait beside the old
# ones as <name>.next: a release is checked with them, and the switch moves them in.
set -euo pipefail
umask 022

fail() { echo "release: $*" >&2; exit 1; }
log() { printf '%s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$ORIGIN" "$2" >> "$ROOT/revisions.log"; }

# Run "$@" as the app user, in directory $1, with the app's .env and that release's venv
# (with_waiting_files: the .env and Django modules this run wrote), in a unit of its own
# with the app's sandbox (sandbox.conf, as its units have it): every process the step
# starts ends with it, and it writes only the app's folders and $WRITABLE (the release
# being prepared, whose parts the app may write are its own until the step ends).
as_app() {
    local dir=$1; shift
    local run=(systemd-run --quiet --wait --collect --service-type=exec --unit="${UNIT%.service}-step-$$-$RANDOM"
               -p "User=$APP_USER" -p "WorkingDirectory=$dir") line
    if [ -t 0 ] && [ -t 1 ]; then run+=(--pty); else run+=(--pipe); fi
    while IFS= read -r line || [ -n "$line" ]; do  # (its last line has no line break)
        case $line in "" | "#"*) continue ;; esac
        run+=(-p "$line")
    done < "$ROOT/sandbox.conf"
    # As the app's unit in socket mode: no capability, and a user namespace of its own.
    run+=(-p CapabilityBoundingSet= -p PrivateUsers=yes)
    run+=(-p UMask=0022)  # after the sandbox's own: what collectstatic writes, the front reads
    [ -z "${WRITABLE:-}" ] || run+=(-p "ReadWritePaths=$WRITABLE")
    "${run[@]}" -- /bin/bash -c \
        'set -a; . "$0"; set +a; [ -z "$2" ] || PYTHONPATH=$2${PYTHONPATH:+:$PYTHONPATH}
         export VIRTUAL_ENV="$1/venv" PATH="$1/venv/bin:$PATH" DJDEPLOY_RELEASE="$1"
         shift 2; exec "$@"' "${ENV_FILE:-$ROOT/shared/.env}" "$dir" "${VIEW:-}" "$@"
}

# A release is checked and migrated with the files it will start with: the .env and the
# deploy's Django modules this run wrote, which wait for the switch (a copy of the
# Django folder with them in, removed on exit).
with_waiting_files() {
    ENV_FILE=$ROOT/shared/.env
    [ ! -e "$ENV_FILE.next" ] || ENV_FILE=$ENV_FILE.next
    VIEW=
    compgen -G "$DJANGO_DIR/*.next" > /dev/null || return 0
    VIEW=$(mktemp -d "$ROOT/.view.XXXXXX")
    trap 'rm -rf "$VIEW"' EXIT
    local f
    for f in "$DJANGO_DIR"/*.py; do [ ! -e "$f" ] || cp "$f" "$VIEW/"; done
    for f in "$DJANGO_DIR"/*.next; do cp "$f" "$VIEW/$(basename "$f" .next)"; done
    chmod 0640 "$VIEW"/*
    chgrp -R "$(id -gn "$APP_USER")" "$VIEW"
    chmod 0750 "$VIEW"
}

# The lines of a failed check worth showing: Django's ERRORS (before its WARNINGS, which
# would otherwise push them out of sight), else every exception of a Python traceback
# (a chained one shows its cause too), else its last exception line (which a command may
# print before its other output); then the last lines.
shown() {
    if grep -q '^ERRORS:' "$1"; then
        sed -n '/^ERRORS:/,/^WARNINGS:/p' "$1" | grep -v '^WARNINGS:' | head -n 20
        return
    fi
    local error
    error=$(raised "$1")
    [ -n "$error" ] || error=$(grep -E '^[A-Za-z_.]*(Error|Exception)\b' "$1" | tail -n 1 || true)
    if [ -n "$error" ]; then
        echo "$error"
        tail -n 5 "$1" | grep -vxF -- "$error" || true
    else
        tail -n 5 "$1"
    fi
}

# The exceptions of each Python traceback in file $1, in order, up to 8 lines each: the
# lines after a traceback's frames, to the blank line that ends them. psycopg's
# "ImportError: no pq wrapper available ... libpq library not found" comes before
# Django's "Error loading psycopg2 or psycopg module", and says what is wrong.
raised() {
    awk '/^Traceback \(most recent call last\):/ { frames = 1; taking = 0; next }
         frames && /^( |$)/ { next }
         frames { frames = 0; taking = 1; n = 0 }
         taking && (/^$/ || /^During handling of the above exception/ || /^The above exception was/) { taking = 0 }
         taking && n++ < 8' "$1"
}

# Where the app's default database is, for a check that could not open it.
database_path() {
    as_app "$1" python -c 'from django.conf import settings; print(settings.DATABASES["default"].get("NAME"))' \
        2>/dev/null || echo "(unknown)"
}

# check NAME COMMAND...: run it; on failure name the release and the check, show what
# matters of its output, and leave nothing of the release behind (neither folder nor archive).
check() {
    local name=$1 out; shift
    out=$(mktemp)
    "$@" > "$out" 2>&1 || failed "$name" "$out"
    rm -f "$out"
}

# failed NAME OUTPUT: check's end when it failed.
failed() {
    echo "release: $ID failed $1:" >&2
    shown "$2" | sed 's/^/    /' >&2
    if grep -q 'unable to open database file' "$2"; then
        echo "release: the database is $(database_path "${NEW:-$ROOT/current}"): the app user $APP_USER" \
             "cannot create or write it there; only $ROOT/shared/data is writable (where the deploy's" \
             "DATABASES puts it, unless keep_app_settings keeps the app's own)" >&2
    fi
    if grep -q "No module named 'pkg_resources'" "$2"; then  # ensurepip's setuptools, on Python 3.11
        echo "release: pkg_resources is setuptools', which the deploy's virtualenvs do not get unasked (made" \
             "without pip): add setuptools to the app's requirements" >&2
    fi
    rm -f "$2"
    [ -z "${NEW:-}" ] || rm -rf "$NEW"
    [ -z "${ARCHIVE:-}" ] || rm -f "$ARCHIVE"
    exit 1
}

# The steps of a new release that run the app's code, each as the project's own manage.py
# runs it, in two units with the app's sandbox (not one per step: each unit costs its
# start). In the first, the release is root's and read-only: the deploy's WSGI entry as
# gunicorn loads it (it also says where STATIC_ROOT is, if the project has collectstatic),
# the checks, the migrations (SQLite: each host its own database; PostgreSQL: one host,
# later), and collectstatic when STATIC_ROOT is the deploy's (STATIC_DIR, made the app
# user's first: a folder of static files only). In the second, if needed, with what the
# steps may write the app user's: collectstatic, then the release commands (data:
# release_commands, each as shell words the deploy quoted: e.g. compilemessages, compress). Each step says its name on a line of its own after $1,
# so a failure is named after the step that ran last.
CHECKS='mark=$1 wsgi=$2 level=$3 migrate=$4 probe=$5 collect=$6 manage=$7
step() { printf "%s %s\n" "$mark" "$1"; }
step "the WSGI import ($wsgi)"
found=$(python -c "$probe" "$mark")
[ -z "$found" ] || printf "%s\n" "$found"
set -- check --deploy --fail-level "$level"
[ -z "$migrate" ] || set -- "$@" ";" migrate --noinput
case $found in *"$mark static "*) [ -z "$collect" ] || set -- "$@" ";" collectstatic --noinput ;; esac
python -c "$manage" "$mark" "$@"'
# MANAGE MARK COMMAND [; COMMAND...]: each command as `python manage.py COMMAND` runs it
# (the project's own manage.py, run as __main__, with what it does to sys.path), one
# after the other in one Python process: Django starts once, not once per command. Each
# says its name after MARK first; the first that fails ends them all with its status.
MANAGE='import runpy, sys
mark, words = sys.argv[1], sys.argv[2:]
names = {"migrate": "its migrations", "collectstatic": "collectstatic"}
while words:
    command = words[:words.index(";")] if ";" in words else words
    words = words[len(command) + 1:]
    print(mark, names.get(command[0], "manage.py " + " ".join(command)), flush=True)
    sys.argv = ["manage.py", *command]
    try:
        runpy.run_path("manage.py", run_name="__main__")
    except SystemExit as end:
        if end.code not in (None, 0):
            raise
    sys.stdout.flush()
    sys.stderr.flush()'
PROBE='import sys
import djdeploy_wsgi  # noqa: F401 (it sets Django up, as gunicorn does)
from django.conf import settings
from django.core.management import get_commands
if "collectstatic" in get_commands():
    print(sys.argv[1], "static", getattr(settings, "STATIC_ROOT", None) or "", flush=True)'
BUILDS='mark=$1 collect=$2; shift 2
step() { printf "%s %s\n" "$mark" "$1"; }
if [ -n "$collect" ]; then step collectstatic; python manage.py collectstatic --noinput; fi
for line; do
    step "manage.py $line"
    eval "set -- $line"
    python manage.py "$@" < /dev/null
done'

# in_unit OUT SCRIPT MARK ARGS...: SCRIPT in release $NEW as the app user (as_app), its
# output in file OUT; on failure, check's end for the step that ran last.
in_unit() {
    local out=$1 script=$2 mark=$3 name
    shift 2
    as_app "$NEW" /bin/bash -euc "$script" steps "$@" < /dev/null > "$out" 2>&1 && return 0
    name=$(grep "^$mark " "$out" | grep -v "^$mark static " | tail -n 1 | cut -d' ' -f2-)
    sed -i "/^$mark /d" "$out"
    failed "${name:-its release steps}" "$out"
}

# STATIC_ROOT ($1, as the release's settings say) made the app user's for collectstatic
# when it lies in the release (another place is the app's own to make writable).
static_root() {
    local root=$1 release
    [ -n "$root" ] || return 0
    root=$(realpath -m -- "$root") release=$(realpath -- "$NEW")
    case $root in
        "$release"/*) install -d -m 0755 "$root" && chown -R "$APP_USER" "$root" ;;
    esac
}

app_steps() {
    local mark out migrate=migrate collect= line commands=()
    mark="release-step-$RANDOM$RANDOM$RANDOM"
    [ "${DATABASE:-sqlite}" != postgresql ] || migrate=
    while IFS= read -r line; do [ -z "$line" ] || commands+=("$line"); done <<< "${RELEASE_COMMANDS:-}"
    local static=${STATIC_DIR:+$NEW/$STATIC_DIR} now=
    if [ -n "$static" ] && [ ${#commands[@]} = 0 ]; then  # collectstatic in the first unit
        install -d -m 0755 "$static" && chown "$APP_USER" "$static"
        now=yes
    fi
    out=$(mktemp)
    in_unit "$out" "$CHECKS" "$mark" "$WSGI" "$CHECK_LEVEL" "$migrate" "$PROBE" "$now" "$MANAGE"
    if grep -q "^$mark static " "$out"; then
        [ -n "$now" ] || { collect=yes; static_root "$(sed -n "s/^$mark static //p" "$out" | tail -n 1)"; }
    elif [ -n "$now" ]; then
        rmdir "$static" "$(dirname "$static")" 2> /dev/null || true  # no staticfiles: no folder for them
    fi
    rm -f "$out"
    # Release commands write into the code (compiled messages, compressed assets): the
    # release is the app user's while they run (not yet serving, and their processes end
    # with their unit), then root's and read-only again, as every release is.
    [ ${#commands[@]} = 0 ] || chown -R "$APP_USER" "$NEW"
    [ -n "$collect" ] || [ ${#commands[@]} -gt 0 ] || return 0
    out=$(mktemp)
    in_unit "$out" "$BUILDS" "$mark" "$collect" "${commands[@]}"
    rm -f "$out"
}

# The release's paths the app writes (data's linked_files and linked_dirs, as LINKED's
# "file PATH" / "dir PATH" lines): each becomes a link to shared/data/linked/PATH, kept
# across releases, as Capistrano links them. What the code has at PATH is replaced; a
# folder (and a file's folder) is made there, the app user's; a file is left for the app
# to make. Folders on the way inside the release are root's, as the rest of it.
LINKS=()
link_shared() {
    local line kind path target data="$ROOT/shared/data"
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        kind=${line%% *} path=${line#* }
        target="$data/linked/$path"
        case $(realpath -m "$NEW/$path") in "$NEW"/*) ;; *) echo "linked $kind $path leads out of the release"; return 1 ;; esac
        if [ "$kind" = dir ]; then
            runuser -u "$APP_USER" -- mkdir -p "$target"
        else
            runuser -u "$APP_USER" -- mkdir -p "$(dirname "$target")"
        fi
        rm -rf "$NEW/$path"
        install -d -m 0755 "$(dirname "$NEW/$path")"
        ln -s "$target" "$NEW/$path"
        LINKS+=("$NEW/$path")
    done <<< "${LINKED:-}"
}

# Fails, naming them, if folder $1 holds links that lead out of it (but its venv and its
# linked paths) or files linked from elsewhere: a release must not give the app a way to
# write what it runs.
confined() {
    local found
    found=$(find "$1" -mindepth 1 \( -type l ! -path "$1/venv" -print \) -o \( -type f -links +1 -print \) |
        while IFS= read -r path; do
            if [ -L "$path" ]; then
                case $(readlink -f "$path") in "$1"/*) continue ;; esac
                case " ${LINKS[*]} " in *" $path "*) [ "$(readlink "$path")" = "$ROOT/shared/data/linked/${path#"$1"/}" ] && continue ;; esac
            fi
            echo "$path"
        done | head -n 3)
    [ -z "$found" ] || { echo "links out of the release, or files linked from elsewhere: $found"; return 1; }
}

# A release that brings migrations the database has not applied (migrations_pending) is
# migrated only after a backup of the data they change (BACKUP: the backup tool, when the
# project has a backup host); the snapshot's id goes into revisions.log beside the release,
# for a rollback to find. A failed backup, or a last verification that failed, stops the
# release, unless MIGRATE_WITHOUT_BACKUP says to go on.
backed_up() {
    local out code=0 failure
    out=$(mktemp)
    failure=$(sed -n 's/^verify_failed [0-9]* //p' "$(dirname "$BACKUP")/status" 2> /dev/null || true)
    if [ -n "$failure" ] && [ -z "${MIGRATE_WITHOUT_BACKUP:-}" ]; then
        echo "the last verification of the backups failed ($failure): run backup.py (it backs up, then" \
             "verifies; a damaged repository: docs/backups.md), or migrate without a good backup:" \
             "--data migrate_without_backup=true" > "$out"
        failed "its backup before migrating" "$out"
    fi
    code=0
    "$BACKUP" take "before $ID" > "$out" 2>&1 || code=$?
    case $code in
        0) log "$ID" "backed up before its migrations: $(tail -n 1 "$out")" ;;
        3) ;;  # no data yet
        *) if [ -z "${MIGRATE_WITHOUT_BACKUP:-}" ]; then
               echo "to migrate without a backup: --data migrate_without_backup=true" >> "$out"
               failed "its backup before migrating" "$out"
           fi
           log "$ID" "migrating without a backup (migrate_without_backup): $(grep -m 1 '^backup: ' "$out" || true)" ;;
    esac
    rm -f "$out"
}

# migrations_pending DIR: 0 when release DIR brings migrations the database lacks, 1 when
# none, 2 when it could not tell (an error in the app, which the step after names).
migrations_pending() {
    local out code=0
    out=$(mktemp)
    as_app "$1" python manage.py migrate --plan --check --skip-checks < /dev/null > "$out" 2>&1 || code=$?
    if [ "$code" = 0 ]; then code=1; elif grep -q '^Planned operations:' "$out"; then code=0; else code=2; fi
    rm -f "$out"
    return "$code"
}

# remigrate ID: release ID, prepared before and deployed again (after a rollback): on
# SQLite, the migrations a rollback ran back (rollback_data) or a restore undid are applied
# again, after a backup, as a new release's are. Only these two take the database back
# (each leaves UNMIGRATED): otherwise the release's migrations are applied, and Django is
# not asked.
UNMIGRATED=${ROOT:-}/shared/.unmigrated
remigrate() {
    ID=$1
    local dir="$ROOT/releases/$ID" code=0
    [ -d "$dir" ] || fail "release $ID is not on this host"
    [ "${DATABASE:-sqlite}" != postgresql ] || return 0
    [ -e "$UNMIGRATED" ] || return 0
    NEW= ARCHIVE=
    with_waiting_files
    migrations_pending "$dir" || code=$?
    [ "$code" != 1 ] || return 0
    [ "$code" != 0 ] || [ -z "${BACKUP:-}" ] || backed_up
    check "its migrations" as_app "$dir" python manage.py migrate --noinput < /dev/null
    rm -f "$UNMIGRATED"
}

prepare() {
    ID=$1 ARCHIVE=$2 venv=$3
    local final="$ROOT/releases/$ID"
    NEW="$ROOT/releases/.new-$ID"
    if [ -d "$final" ]; then rm -f "$ARCHIVE"; return 0; fi
    with_waiting_files
    rm -rf "$NEW"
    install -d -m 0755 "$NEW"
    WRITABLE=$NEW
    check "to unpack its code" tar -C "$NEW" --no-same-owner --no-same-permissions -xf "$ARCHIVE"
    ln -s "../../venvs/$venv" "$NEW/venv"
    check "to link the paths the app writes" link_shared
    if [ -n "${BACKUP:-}" ] && [ "${DATABASE:-sqlite}" != postgresql ] && migrations_pending "$NEW"; then
        backed_up
    fi
    app_steps
    WRITABLE=
    # Root's and read-only to the app again; what the app user wrote may not reach out of it.
    chown -R root:root "$NEW"
    chmod -R go-w "$NEW"
    rm -f "$NEW/venv"
    ln -s "../../venvs/$venv" "$NEW/venv"
    check "to keep within the release" confined "$NEW"
    echo "$ID $(date +%s)" > "$NEW/.release"
    mv -T "$NEW" "$final"
    rm -f "$ARCHIVE"
}

# The app's last error line in its journal since the restart, as "its last error: ...".
last_error() {
    local line
    line=$(journalctl -u "$UNIT" --since "@$STARTED" -o cat --no-pager -q 2>/dev/null \
           | grep -E 'Error|Exception|error|Traceback|Invalid' | tail -n 1 | cut -c1-300 || true)
    [ -z "$line" ] || echo "its last error: $line"
}

# One GET of the health check (the deploy's gate, and status.py's health=): its status code,
# 000 when nothing answered; the body goes to $1.
probe() {
    # HTTPS=1: asked as the front asks (it ends TLS): X-Forwarded-Proto: https.
    curl -s -o "${1:-/dev/null}" -w '%{http_code}' -m "$HEALTH_TIMEOUT" -H "Host: $HEALTH_HOST" \
        ${HTTPS:+-H "X-Forwarded-Proto: https"} --unix-socket "$SOCKET" "http://localhost$HEALTH_PATH" || true
}

healthy() {
    [ -n "${WEB-1}" ] || return 0  # a worker-only host serves nothing: its processes must stay up
    local i code body url="unix:$SOCKET"
    body=$(mktemp)
    for i in $(seq 1 "$HEALTH_RETRIES"); do
        : > "$body"
        code=$(probe "$body")
        [ "$code" = 200 ] && { rm -f "$body"; return 0; }
        sleep 1
    done
    local said error
    said=$(head -c 300 "$body" | head -n 1 | tr -d '\r')
    rm -f "$body"
    [ "$code" != 000 ] || code=nothing
    HEALTH="GET $HEALTH_PATH answered ${code:-nothing} (not 200) $HEALTH_RETRIES times ($url, Host: $HEALTH_HOST)"
    # Our own endpoint's one-line reason; an app's page is not repeated here.
    [ -n "$said" ] && [ "$HEALTH_PATH" = /-/up ] && HEALTH="$HEALTH: $said"
    error=$(last_error)
    [ -z "$error" ] || HEALTH="$HEALTH; $error"
    return 1
}

# What the app was started with: release and a hash of every file it reads at start
# (the deploy's Deployment fact computes the same), so a restart owed is never forgotten.
config_hash() {
    cat $CONFIG_FILES 2>/dev/null | sha256sum | cut -c1-16
}

serving() {
    echo "$1 $(config_hash)" > "$ROOT/.serving"
}

# The deploy started the app, which was stopped (systemd.service): it now runs release $1 with
# the files in place, as a restart by the switch would have left it. Recorded, so a file
# repaired later owes it no restart (a start after this record is still one by hand).
started() {
    [ "$(readlink "$ROOT/current")" = "releases/$1" ] && systemctl is-active -q "$UNIT" && serving "$1"
    return 0
}

# The files waiting for this switch (<name>.next) move in; the ones they replace stay as
# <name>.prev until the release serves, for move_back.
STAGED=()
move_in() {
    local f
    for f in $CONFIG_FILES; do
        [ -e "$f.next" ] || continue
        if [ -e "$f" ]; then ln -f "$f" "$f.prev"; else rm -f "$f.prev"; fi
        mv -f "$f.next" "$f"
        STAGED+=("$f")
    done
    units_read
}

move_back() {
    local f
    for f in "${STAGED[@]}"; do
        if [ -e "$f.prev" ]; then mv -f "$f.prev" "$f"; else rm -f "$f"; fi
    done
    units_read
}

units_read() {  # systemd reads a unit file that moved
    local f
    for f in "${STAGED[@]}"; do
        case $f in /etc/systemd/*) systemctl daemon-reload; return ;; esac
    done
}

kept() { local f; for f in "${STAGED[@]}"; do rm -f "$f.prev"; done; }

# A restart is owed unless the app already serves release $ID with exactly these files
# (a file repaired after a hand edit the app never ran), and was not restarted by hand
# since the deploy started it (then it may run the edit).
restart_owed() {
    [ "$1" = "$ID" ] || return 0
    [ "$(cat "$ROOT/.serving" 2>/dev/null)" = "$ID $(config_hash)" ] || return 0
    systemctl is-active -q "$UNIT" || return 0
    local started
    started=$(systemctl show -P ActiveEnterTimestamp --timestamp=unix "$UNIT" 2>/dev/null | tr -d @)
    [[ $started =~ ^[0-9]+$ ]] || return 0
    [ "$started" -gt "$(stat -c %Y "$ROOT/.serving")" ]
}

point() {  # point link $1 at releases/$2, atomically (new link, then rename over the old one)
    ln -sfn "releases/$2" "$ROOT/.$1.new"
    mv -T "$ROOT/.$1.new" "$ROOT/$1"
}

restart() {
    STARTED=$(date +%s)
    [ -n "${WEB-1}" ] || return 0  # a worker-only host: its processes only (restart_processes)
    # A deliberate restart: clear systemd's start rate limit (5 starts in 10 s), which is
    # there for crash loops, not for deploys and rollbacks in quick succession.
    systemctl reset-failed "$UNIT" 2>/dev/null || true
    systemctl restart "$UNIT" 2>/dev/null || {
        HEALTH="systemctl restart $UNIT failed (journalctl -u $UNIT)$(last_error | sed 's/^/; /')"
        return 1; }
}

# The process types' instances ($PROCESSES, e.g. "shop-worker@1.service"), restarted once
# the web is healthy: each stops with its own signal (a job in flight finishes or goes
# back to its queue, within its TimeoutStopSec) and starts in the release `current` is now.
# A revert restarts only those that run (try-restart): a type this run added is unknown
# to the files that go back.
restart_processes() {
    local how=${1:-restart}
    [ -n "${PROCESSES:-}" ] || return 0
    # shellcheck disable=SC2086  # unit names, split on purpose
    systemctl reset-failed $PROCESSES 2>/dev/null || true
    # shellcheck disable=SC2086
    systemctl "$how" $PROCESSES 2>/dev/null || {
        HEALTH="systemctl $how $PROCESSES failed (journalctl -u ${PROCESSES%% *})"; return 1; }
    [ "$how" = restart ] || return 0
    stay_up
}

# What process unit $1 wrote since the restart (of its run $2 if given: not what the one
# before wrote as it stopped): its last error line, else its first line.
said() {
    journalctl "_SYSTEMD_UNIT=$1" _TRANSPORT=stdout ${2:+"$2"} --since "@$STARTED" -o cat --no-pager -q 2>/dev/null |
        awk '/Error|Exception|error|Traceback|Invalid/ { e = $0 } NR == 1 { f = $0 } END { print (e != "" ? e : f) }' |
        cut -c1-300 || true
}

# Each instance of $PROCESSES still running PROCESS_SETTLE seconds after its restart: a
# worker that cannot start (an import that fails, a broker it cannot reach) exits within
# them, and systemd would start it again and again (Restart=always) while the deploy
# said it was done.
stay_up() {
    local until=$((SECONDS + ${PROCESS_SETTLE:-3})) unit state line
    while :; do
        for unit in $PROCESSES; do
            state=$(systemctl show -P SubState "$unit" 2>/dev/null || true)
            [ "$state" = running ] && continue
            line=$(said "$unit" "_SYSTEMD_INVOCATION_ID=$(systemctl show -P InvocationID "$unit" 2>/dev/null)")
            [ -n "$line" ] || line=$(said "$unit")
            HEALTH="$unit did not stay up (${state:-unknown}, journalctl -u $unit)${line:+; it said: $line}"
            return 1
        done
        [ "$SECONDS" -lt "$until" ] || return 0
        sleep 0.5
    done
}

switch() {
    ID=$1 mode=${2:-deploy}
    [ -d "$ROOT/releases/$ID" ] || fail "release $ID is not on this host: deploy it first"
    # One switch at a time: a deploy killed on the controller leaves its switch running
    # here, and the next deploy's must not restart, move files or revert beside it.
    exec 9>> "$ROOT/.switch-lock"
    flock -w 300 9 || fail "another switch has run on this host for 5 minutes (a killed deploy's?): wait, then deploy again"
    local old f
    old=$(basename "$(readlink "$ROOT/current" 2>/dev/null || true)")
    if [ "$mode" = rollback ]; then  # the release goes back with the files in place
        for f in $CONFIG_FILES; do rm -f "$f.next"; done
    fi
    move_in
    if ! restart_owed "$old"; then
        kept
        [ ${#STAGED[@]} = 0 ] || log "$ID" "files repaired (${STAGED[*]}): the app already runs them, not restarted"
        return 0
    fi
    point current "$ID"
    if restart && healthy && restart_processes; then
        serving "$ID"
        kept
        if [ -n "$old" ] && [ "$old" != "$ID" ]; then point previous "$old"; fi
        if [ "$mode" = rollback ]; then log "$ID" "rolled back (from ${old:-none})"
        elif [ "$old" = "$ID" ]; then log "$ID" "restarted (the files it reads at start changed)"
        else log "$ID" "switched (from ${old:-none})"; fi
        return 0
    fi
    local why=$HEALTH
    if [ -z "$old" ]; then  # a first release: its files stay with it
        log "$ID" "failed ($why)"
        fail "release $ID failed its health check: $why; no earlier release to go back to"
    fi
    if [ "$old" = "$ID" ] && [ ${#STAGED[@]} = 0 ]; then
        log "$ID" "failed after a restart ($why)"
        fail "release $ID failed its health check after a restart: $why; its release and files are the ones it ran before"
    fi
    point current "$old"
    move_back
    local back="$old"
    [ "$old" != "$ID" ] || back="its previous files"
    if restart && healthy && restart_processes try-restart; then
        serving "$old"
        log "$ID" "reverted to $back ($why)"
        fail "release $ID failed its health check: $why; reverted to $back, which serves again"
    fi
    log "$ID" "reverted to $back, which is unhealthy too ($HEALTH)"
    fail "release $ID failed its health check: $why; reverted to $back, which does not answer either: $HEALTH"
}

manage() {
    local dir
    dir=$(readlink -f "$ROOT/current" 2>/dev/null || true)
    [ -n "$dir" ] && [ -d "$dir" ] || fail "no release serves on this host yet: deploy first"
    as_app "$dir" python manage.py "$@"
}

listen() {
    local socket="${UNIT%.service}.socket"
    # A first deploy: the app's unit waits for the switch, whose restart starts the socket
    # (the unit requires it); systemd refuses a socket whose service is not loaded.
    [ "$(systemctl show -P LoadState "$UNIT" 2>/dev/null)" = loaded ] || return 0
    systemctl stop "$UNIT" 2>/dev/null || true
    systemctl start "$socket" 2>/dev/null ||
        fail "$socket could not listen at $SOCKET (journalctl -u $socket)"
}

# The app's socket moves off loopback ports: once the front sends elsewhere, wait until
# gunicorn took what was queued there (the front's last requests: half a second, then
# the sockets' accept queues empty, at most 5 s more), so stopping the old socket drops none.
drained() {
    local ports queued i
    ports=$(IFS='|'; echo "$*")
    [[ $ports =~ ^[0-9]+(\|[0-9]+)*$ ]] || fail "drained: ports expected, not '$*'"
    sleep 0.5
    for i in $(seq 50); do
        queued=$(ss -Hltn | awk -v ports="^127[.]0[.]0[.]1:($ports)\$" '$4 ~ ports {n += $2} END {print n + 0}') ||
            queued=0  # no ss answer: nothing to wait for (as the loop it replaced did)
        [ "$queued" = 0 ] && return 0
        sleep 0.1
    done
}

prune() {
    local keep=$1 current previous kept=0 id
    current=$(basename "$(readlink "$ROOT/current" 2>/dev/null || true)")
    previous=$(basename "$(readlink "$ROOT/previous" 2>/dev/null || true)")
    rm -rf "$ROOT"/releases/.new-* "$ROOT"/releases/*.tar "$ROOT"/.view.*
    # Newest first, by the time each release was prepared; release folders only (their names
    # are ids), whatever a .release file holds.
    local dir when
    for id in $(for dir in "$ROOT"/releases/*/; do
                    id=$(basename "$dir")
                    [[ $id =~ ^[0-9a-f]{12}$ ]] || continue
                    when=$(cut -d' ' -f2 "$dir.release" 2>/dev/null || true)
                    [[ $when =~ ^[0-9]+$ ]] || when=0
                    echo "$when $id"
                done | sort -k1,1nr | cut -d' ' -f2); do
        if [ "$id" = "$current" ] || [ "$id" = "$previous" ] || [ "$kept" -lt "$keep" ]; then
            kept=$((kept + 1))
        else
            rm -rf -- "${ROOT:?}/releases/${id:?}"
        fi
    done
    # Virtualenvs no kept release uses.
    local used venv
    used=$(for link in "$ROOT"/releases/*/venv; do basename "$(readlink "$link")"; done 2>/dev/null | sort -u)
    for venv in "$ROOT"/venvs/*; do
        [ -d "$venv" ] || continue
        grep -qx "$(basename "$venv")" <<< "$used" || rm -rf "$venv"
    done
}

# One host per deploy migrates the shared database, before any host switches; the
# advisory lock (held by the migrating session itself) keeps two deploys from overlapping.
MIGRATE_PY='
import sys
import django
django.setup()
from django.core.management import call_command
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_advisory_lock(%s)", [int(sys.argv[1])])
call_command("migrate", interactive=False, verbosity=1)
'

migrate() {
    ID=$1 key=$2
    local dir="$ROOT/releases/$ID"
    [ -d "$dir" ] || fail "release $ID is not on this host: deploy it first"
    NEW=
    with_waiting_files
    check "its migrations" as_app "$dir" python -c "$MIGRATE_PY" "$key"
    echo "$ID" > "$ROOT/.migrated"
    log "$ID" "migrated the shared database"
}

# The app's Procfile release line, once per deploy (on one host), in release $1 before any
# switch, as the app user with the files it will start with.
release_command() {
    ID=$1
    local dir="$ROOT/releases/$ID"
    [ -d "$dir" ] || fail "release $ID is not on this host: deploy it first"
    NEW=
    with_waiting_files
    check "its Procfile release command ($RELEASE_COMMAND)" as_app "$dir" bash -c "$RELEASE_COMMAND"
    echo "$ID" > "$ROOT/.released"
    log "$ID" "ran the Procfile's release command"
}

# What a rollback to a release meets: migrations the database has applied that the current
# release knows and the release does not (a migration neither knows, say one an earlier
# test or a removed app left, is not the rollback's concern). Printed by each release:
# "known APP.NAME" (its files, and what its squashed ones replace), "applied APP.NAME",
# "leaf APP NAME" (each app's last migration).
MIGRATIONS_PY='
import django
django.setup()
from django.db import connection
from django.db.migrations.loader import MigrationLoader
loader = MigrationLoader(connection, ignore_no_migrations=True)
for (app, name), migration in loader.disk_migrations.items():
    for key in ((app, name), *(tuple(k) for k in migration.replaces or ())):
        print("known", ".".join(key))
for app, name in loader.applied_migrations:
    print("applied", f"{app}.{name}")
for app in sorted({app for app, _ in loader.disk_migrations}):
    leaves = loader.graph.leaf_nodes(app)
    if leaves:
        print("leaf", app, leaves[0][1])
'

# migration_files DIR: the names of the migration files release DIR runs with (its code's
# and its virtualenv's packages'), one per line, sorted.
migration_files() {
    find -L "$1" -path '*/migrations/[0-9]*.py' -printf '%P\n' 2> /dev/null | sed 's|^.*/site-packages/||' | sort -u
}

migrations() {
    ID=$1
    local dir="$ROOT/releases/$ID" current
    [ -d "$dir" ] || fail "release $ID is not on this host"
    current=$(readlink -f "$ROOT/current")
    # Every migration file of the current release is in release ID too: nothing it knows
    # that ID does not, and no Django start needed (a rollback's usual case).
    if [ -z "$(comm -23 <(migration_files "$current") <(migration_files "$dir"))" ]; then return 0; fi
    echo "in target"
    as_app "$dir" python -c "$MIGRATIONS_PY" < /dev/null
    echo "in current"
    as_app "$current" python -c "$MIGRATIONS_PY" < /dev/null
}

# The current release (the code that knows them) runs migrations back, before a rollback
# to release $1 switches: each APP to NAME, as `manage.py migrate APP NAME`.
unmigrate() {
    ID=$1; shift
    local dir out args=("$@")
    dir=$(readlink -f "$ROOT/current")
    NEW=
    # Every step must be reversible before any runs: a half-reversed schema is worse than none.
    out=$(mktemp)
    while [ $# -ge 2 ]; do
        check "to plan $1's migrations back to $2" as_app "$dir" python manage.py migrate --plan "$1" "$2" < /dev/null \
            > "$out"
        if grep -q IRREVERSIBLE "$out"; then
            echo "release: $1's migrations back to $2 hold a step Django cannot reverse ($(grep -m 1 IRREVERSIBLE "$out" |
                  sed 's/^ *//' | cut -c1-200)): roll back with --data rollback_data=restore instead" >&2
            rm -f "$out"
            exit 1
        fi
        shift 2
    done
    rm -f "$out"
    set -- "${args[@]}"
    # What reversing drops (a column, a table) is kept in a backup first, when there is one.
    if [ -n "${BACKUP:-}" ]; then
        out=$("$BACKUP" take "before reversing for $ID" 2>&1) && log "$(basename "$dir")" "backed up before running migrations back: $(tail -n 1 <<< "$out")" ||
            { [ $? = 3 ] || { echo "release: the backup before running migrations back failed: $(tail -n 1 <<< "$out")" >&2; exit 1; }; }
    fi
    touch "$UNMIGRATED"  # a release deployed again migrates again (remigrate)
    while [ $# -ge 2 ]; do
        check "to run $1's migrations back to $2 (for a rollback to $ID)" \
            as_app "$dir" python manage.py migrate --noinput "$1" "$2" < /dev/null
        log "$(basename "$dir")" "ran $1's migrations back to $2, for a rollback to $ID"
        shift 2
    done
}

command=${1:-}
shift || true
case "$command" in
    prepare) prepare "$@" ;;
    migrations) migrations "$@" ;;
    remigrate) remigrate "$@" ;;
    unmigrate) unmigrate "$@" ;;
    switch) switch "$@" ;;
    prune) prune "$@" ;;
    started) started "$@" ;;
    migrate) migrate "$@" ;;
    release-command) release_command "$@" ;;
    listen) listen ;;
    drained) drained "$@" ;;
    manage) manage "$@" ;;
    health) code=$(probe); if [ -z "$code" ] || [ "$code" = 000 ]; then echo none; else echo "$code"; fi ;;
    *) fail "usage: release.sh prepare|switch|prune|migrate|release-command|health|listen|drained|manage|migrations|unmigrate|remigrate ..." ;;
esac
