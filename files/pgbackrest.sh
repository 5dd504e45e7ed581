#!/bin/bash
# PostgreSQL's backups by pgBackRest, the backup host its repository host. The same tool on
# both hosts; its settings are /etc/pgbackrest/djdeploy.env (STANZA VERSION ROLE), written
# by the deploy. On the backup host, as postgres (the repository's owner):
#   pgbackrest.sh take TYPE REASON   a backup (full, incr, or auto: full when the last full is
#                                    a week old or there is none), annotated with REASON;
#                                    prints "backup LABEL"
#   pgbackrest.sh verify             pgBackRest's verify (every file of the repository against
#                                    its checksum), then the latest backup restored into scratch
#                                    space and started there: every database of the cluster
#                                    present and each Django database with its migrations; the
#                                    tables' rows counted
#   pgbackrest.sh last               the status file: the last backup, failure and verification
# On the db host, as root:
#   pgbackrest.sh plan [LABEL|TIME]  what `restore` would replace, and by which backup
#   pgbackrest.sh restore [LABEL|TIME]
#                                    the cluster put back as backup LABEL left it (default: as
#                                    the archive's last WAL left it), or as it was at TIME
#                                    (UTC, "YYYY-MM-DD HH:MM:SS"); PostgreSQL stopped while it
#                                    moves, what was there kept beside
set -euo pipefail
umask 077
export LC_ALL=C TZ=UTC
cd /  # as postgres, from wherever it was started (root's home is closed to it)
. /etc/pgbackrest/djdeploy.env  # STANZA VERSION
STATUS=/var/lib/pgbackrest/djdeploy-status
PGDATA=/var/lib/postgresql/$VERSION/main
BIN=/usr/lib/postgresql/$VERSION/bin
WEEK=$((7 * 24 * 3600))

fail() { echo "pgbackrest: $*" >&2; exit 1; }
brest() { pgbackrest --stanza="$STANZA" --log-level-console=error "$@"; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

noted() {  # KEY VALUE: KEY's line in the status file is now "KEY VALUE" (none if VALUE is empty)
    local part
    part=$(mktemp "$STATUS.XXXXXX")
    { grep -v "^$1 " "$STATUS" 2>/dev/null || true
      [ -z "$2" ] || printf '%s %s\n' "$1" "$(tr '\n\t' '  ' <<< "$2" | sed 's/ *$//')"; } > "$part"
    chmod 0640 "$part"
    mv -f "$part" "$STATUS"
}
failed() { local step=$1; shift; noted "${step}_failed" "$(date +%s) $*"; fail "$*"; }

# backups: one line per backup of the stanza, oldest first: "LABEL TYPE START STOP SIZE"
backups() {
    local json
    json=$(as_postgres pgbackrest --stanza="$STANZA" --output=json info 2>&1) ||
        { echo "pgbackrest info failed: $(tail -n 1 <<< "$json" | cut -c1-200)" >&2; return 1; }
    python3 -I -S -c '
import json, sys
for stanza in json.load(sys.stdin):
    for b in stanza.get("backup", []):
        print(b["label"], b["type"], b["timestamp"]["start"], b["timestamp"]["stop"], b["info"]["repository"]["delta"])' <<< "$json"
}

take() {
    local type=${1:-auto} reason=${2:-manual} last out label list
    list=$(backups 2>&1) || failed take "$list"
    if [ "$type" = auto ]; then
        last=$(awk '$2 == "full" { t = $4 } END { print t + 0 }' <<< "$list")
        type=incr; [ $(( $(date +%s) - last )) -lt $WEEK ] || type=full
    fi
    out=$(brest --type="$type" --annotation="reason=${reason// /_}" backup 2>&1) ||
        failed take "pgbackrest backup failed: $(tail -n 1 <<< "$out" | cut -c1-300)"
    list=$(backups 2>&1) || failed take "$list"
    read -r label _ _ stop size <<< "$(tail -n 1 <<< "$list")"
    [ -n "$label" ] || failed take "pgbackrest backup gave no backup"
    noted take_failed ""
    noted backup "$label $stop ${size:-0} ${reason// /_}"
    echo "backup $label"
}

verify() {
    local label out port=55432 rows
    scratch=/var/lib/pgbackrest/.verify  # global: the EXIT trap removes it
    label=$(backups 2>&1) || failed verify "$label"
    label=$(tail -n 1 <<< "$label" | cut -d' ' -f1)
    [ -n "$label" ] || failed verify "no backup of $STANZA yet: take one with backup.py"
    out=$(brest verify 2>&1) || failed verify "pgbackrest verify found the repository damaged: $(tail -n 1 <<< "$out" | cut -c1-300)"
    rm -rf "$scratch"; mkdir -m 0700 "$scratch"
    trap '"$BIN/pg_ctl" -D "$scratch/data" -m immediate stop > /dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
    out=$(brest --set="$label" --reset-pg1-host --pg1-path="$scratch/data" --type=immediate --target-action=promote \
          --archive-mode=off restore 2>&1) || failed verify "backup $label does not restore: $(tail -n 1 <<< "$out" | cut -c1-300)"
    printf "listen_addresses = ''\nport = $port\nunix_socket_directories = '$scratch'\narchive_mode = off\njit = off\n" > "$scratch/data/postgresql.conf"
    printf 'local all postgres peer\n' > "$scratch/data/pg_hba.conf"
    : > "$scratch/data/pg_ident.conf"
    out=$("$BIN/pg_ctl" -D "$scratch/data" -l "$scratch/log" -w -t 600 start 2>&1) ||
        failed verify "backup $label restored but PostgreSQL does not start on it: $(tail -n 1 "$scratch/log" | cut -c1-300)"
    for _ in $(seq 600); do
        [ "$(psql -XAtq -h "$scratch" -p $port -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
        sleep 0.5
    done
    rows=$(counted "$scratch" $port) || failed verify "backup $label: $rows"
    noted verify_failed ""
    noted verified "$label $(date +%s) $rows"
    echo "backup $label restores: $rows"
}

# counted DIR PORT: every database of the restored cluster whole enough to read: each table's
# rows counted; a database with Django's table must have its migrations (an empty dump is no
# backup); prints "N database(s), T tables, R rows".
counted() {
    local db dbs n=0 tables=0 rows=0 out migrations
    dbs=$(psql -XAtq -h "$1" -p "$2" -d postgres -c "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY 1") ||
        { echo "the restored cluster does not answer"; return 1; }
    [ -n "$dbs" ] || { echo "the restored cluster holds no database of a project: not a backup"; return 1; }
    for db in $dbs; do
        out=$(psql -XAtq -h "$1" -p "$2" -d "$db" -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") ||
            { echo "database $db does not answer"; return 1; }
        if [ "$(psql -XAtq -h "$1" -p "$2" -d "$db" -c "SELECT to_regclass('public.django_migrations') IS NOT NULL")" = t ]; then
            migrations=$(psql -XAtq -h "$1" -p "$2" -d "$db" -c "SELECT count(*) FROM django_migrations")
            [ "$migrations" -gt 0 ] || { echo "database $db has no migration applied: not a backup"; return 1; }
        fi
        tables=$((tables + out))
        out=$(psql -XAtq -h "$1" -p "$2" -d "$db" -c "SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") ||
            { echo "database $db: its tables cannot be read"; return 1; }
        rows=$((rows + out)); n=$((n + 1))
    done
    echo "$n database(s), $tables tables, $rows rows"
}

# target [LABEL|TIME]: pgBackRest's restore options for it, one per line
target() {
    local what=${1:-latest}
    if [ "$what" = latest ]; then :
    elif [[ $what =~ ^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$ ]]; then
        backups | cut -d' ' -f1 | grep -qx "$what" || fail "no backup $what of $STANZA: see status.py"
        printf '%s\n' "--set=$what" --type=immediate --target-action=promote
    elif [[ $what =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}[\ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?$ ]]; then
        local at
        at=$(date -u -d "${what/T/ } UTC" '+%Y-%m-%d %H:%M:%S' 2> /dev/null) || fail "not a time: $what (UTC, \"YYYY-MM-DD HH:MM:SS\")"
        [ "$(date -d "$at UTC" +%s)" -le "$(date +%s)" ] || fail "$what is in the future"
        printf '%s\n' --type=time "--target=$at+00" --target-action=promote
    else
        fail "not a backup label or a time: $what (a label from status.py, or UTC \"YYYY-MM-DD HH:MM:SS\")"
    fi
}

plan() {
    local what=${1:-latest} first
    target "$what" > /dev/null
    first=$(backups) || exit 1
    first=$(head -n 1 <<< "$first")
    [ -n "$first" ] || fail "no backup of $STANZA on the backup host yet: take one with backup.py"
    case $what in
        latest) echo "would restore the cluster as the archive's last WAL left it (backup $(backups | tail -n 1 | cut -d' ' -f1) and the WAL after it), replacing:" ;;
        *-*F*) echo "would restore the cluster as backup $what left it, replacing:" ;;
        *) [ "$(date -d "$(target "$what" | sed -n 's/^--target=\(.*\)+00$/\1/p') UTC" +%s)" -ge "$(cut -d' ' -f4 <<< "$first")" ] ||
               fail "$what is before the oldest backup of $STANZA ($(date -d "@$(cut -d' ' -f4 <<< "$first")" '+%F %T') UTC)"
           echo "would restore the cluster as it was at $what UTC, replacing:" ;;
    esac
    echo "  $PGDATA: $(du -sh "$PGDATA" 2> /dev/null | cut -f1), databases: $(runuser -u postgres -- psql -XAtq -d postgres -c "SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database WHERE NOT datistemplate" 2> /dev/null || echo unknown)"
    echo "  (kept beside as $PGDATA.replaced-<time>; PostgreSQL stopped while it moves)"
}

# archived: the WAL written until now reaches the repository (a switch, then pgBackRest's
# check waits until that segment is archived), so that a restore loses nothing the
# cluster committed. Said, not fatal: a fresh host's cluster is not the stanza's.
archived() {
    local out
    out=$(runuser -u postgres -- psql -XAtq -d postgres -c 'SELECT pg_switch_wal()' 2>&1 &&
          runuser -u postgres -- pgbackrest --stanza="$STANZA" --log-level-console=error check 2>&1) ||
        echo "note: the last WAL of the cluster in place could not be archived first ($(tail -n 1 <<< "$out" | cut -c1-200)): what it committed since its last archived segment is not in the restore" >&2
}

# recovered: PostgreSQL came up on the restored cluster and finished recovering (it may
# replay WAL for long: waited for while it runs; a cluster that went down fails at once).
recovered() {
    local state
    for _ in $(seq 86400); do
        [ "$(runuser -u postgres -- psql -XAtq -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
        state=$(pg_lsclusters -h "$VERSION" main 2> /dev/null | awk '{print $4}')
        case $state in
            down*) sleep 2
                  [[ "$(pg_lsclusters -h "$VERSION" main 2> /dev/null | awk '{print $4}')" != down* ]] ||
                      { echo "PostgreSQL stopped while recovering: $(tail -n 1 "/var/log/postgresql/postgresql-$VERSION-main.log" 2> /dev/null | cut -c1-300)" >&2; return 1; } ;;
        esac
        sleep 0.5
    done
    echo "PostgreSQL did not finish recovering in 12 hours" >&2
    return 1
}

restore() {
    local what=${1:-latest} stamp options out
    target "$what" > /dev/null
    mapfile -t options < <(target "$what")
    plan "$what" > /dev/null
    systemctl is-active --quiet postgresql && archived
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    systemctl stop postgresql
    trap 'undo "$out"' ERR
    out="moving the cluster aside"
    mv -T "$PGDATA" "$PGDATA.replaced-$stamp"
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    out=$(runuser -u postgres -- pgbackrest --stanza="$STANZA" --log-level-console=error "${options[@]}" restore 2>&1) ||
        { out="pgbackrest restore: $(tail -n 1 <<< "$out" | cut -c1-300)"; false; }
    out="starting PostgreSQL"
    systemctl start postgresql
    out=$(recovered 2>&1) || false
    trap - ERR
    echo "restored the cluster ($what); what was there is kept as $PGDATA.replaced-$stamp"
}

undo() {
    trap - ERR
    set +e
    systemctl stop postgresql
    [ ! -d "$PGDATA.replaced-$stamp" ] || { rm -rf "$PGDATA"; mv -T "$PGDATA.replaced-$stamp" "$PGDATA"; }
    systemctl start postgresql
    fail "the restore ($what) failed (${1:-unknown step}): the cluster that was there is back in place, PostgreSQL started"
}

command=${1:-}
shift || true
case "$command" in
    take) take "$@" ;;
    verify) verify ;;
    plan) plan "$@" ;;
    restore) restore "$@" ;;
    last) cat "$STATUS" 2> /dev/null || true ;;
    *) fail "usage: pgbackrest.sh take TYPE REASON|verify|plan [LABEL|TIME]|restore [LABEL|TIME]|last" ;;
esac
