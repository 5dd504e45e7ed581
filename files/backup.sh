#!/bin/bash
# The host side of backups (restic, to the project's backup host over SFTP), as root:
#   backup.sh init              the repository exists (restic init, once); noted in ./repository
#   backup.sh take REASON       a snapshot of shared/data (each SQLite file by SQLite's online
#                               backup, never a copy of the live file) and shared/media; prints
#                               "snapshot ID"; a damaged copy is not a backup (fails); with no
#                               database holding a table yet there is nothing to keep (exit 3)
#   backup.sh prune             restic forget --prune, as backup.conf's KEEP says
#   backup.sh verify            the repository checked, and the latest snapshot restored into
#                               scratch space and checked (every SQLite file whole, each
#                               table's rows as counted at backup time)
#   backup.sh plan [ID]         what `restore ID` (default: latest) would replace; changes nothing
#   backup.sh restore [ID]      snapshot ID's data and uploads in place, the app stopped while
#                               they move; what was there is kept beside, named in the output
#   backup.sh last              the status file: the last backup, failure and verification
# With DATA empty (a files host: uploads alone), a snapshot holds MEDIA and its file count,
# which the verification checks instead of databases.
# Its settings are backup.conf beside it (written by the deploy); the password, the SSH key
# and the backup host's key are files beside it too, root's alone. Outcomes go to ./status,
# which status.py shows and a deploy that would migrate reads.
set -euo pipefail
umask 077
export LC_ALL=C TZ=UTC  # restic's times in UTC, as status.py and revisions.log show times
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/backup.conf"  # PROJECT DATA MEDIA MEDIA_MODE APP_USER APP_GROUP UNITS REPOSITORY SSH_COMMAND KEEP
export RESTIC_REPOSITORY=$REPOSITORY RESTIC_PASSWORD_FILE=$HERE/password RESTIC_CACHE_DIR=$HERE/cache
STATUS=$HERE/status
if [ -n "$DATA" ]; then
    STAGE=$(realpath -m "$DATA/..")/.backup-stage  # the app user's: it copies its own databases there
else
    STAGE=$HERE/stage  # root's: the uploads' count
fi
TAG=djdeploy-$PROJECT

fail() { echo "backup: $*" >&2; exit 1; }
run_restic() { restic -o "sftp.command=$SSH_COMMAND" "$@"; }

# noted KEY VALUE: KEY's line in the status file is now "KEY VALUE" (none if VALUE is empty;
# a line break in VALUE becomes a space: one line per key).
noted() {
    local part
    part=$(mktemp "$STATUS.XXXXXX")
    { grep -v "^$1 " "$STATUS" 2>/dev/null || true
      [ -z "$2" ] || printf '%s %s\n' "$1" "$(tr '\n\t' '  ' <<< "$2" | sed 's/ *$//')"; } > "$part"
    mv -f "$part" "$STATUS"
}

# locked: this host's one backup operation at a time (flock), and restic's locks a run of
# this host left behind removed (the repository is this host's alone: no other host's
# lock can be there, so a lock is stale once the flock is ours).
locked() {
    exec 9> "$HERE/.lock"
    flock -w 900 9 || return 1
    run_restic unlock > /dev/null 2>&1 || true
}

# A failure of STEP (take, verify) is noted, then ends the tool with its line.
failed() {
    local step=$1; shift
    noted "${step}_failed" "$(date +%s) $*"
    fail "$*"
}

# COPY: as the app user, each file of shared/data into the stage (SQLite files by the
# online backup API, then checked whole), and the stage's `counts.json`: {file: {table: rows}}.
# CHECK DIR: as root, on a restored stage: each SQLite file of counts.json whole, read-only
# (immutable; virtual tables not run; only SQLite's built-in functions exist here, so a
# schema's CHECK constraints, such as Django's JSON_VALID, run nothing else), its rows as
# counted; the names in counts.json must be plain relative paths inside the stage.
SQLITE='import json, os, shutil, sqlite3, sys, urllib.parse
verb, source, stage = sys.argv[1], sys.argv[2], sys.argv[3]
HEADER = b"SQLite format 3\x00"
def is_sqlite(path):
    with open(path, "rb") as f:
        return f.read(16) == HEADER
def counted(path, readonly):
    if readonly:
        db = sqlite3.connect("file:" + urllib.parse.quote(path) + "?mode=ro&immutable=1", uri=True)
    else:
        db = sqlite3.connect(path)
    whole = db.execute("PRAGMA integrity_check").fetchone()[0]
    if whole != "ok":
        sys.exit(f"{os.path.basename(path)}: not whole: {whole}"[:300])
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = \"table\" AND "
                                       "sql NOT LIKE \"CREATE VIRTUAL%\" ORDER BY name")]
    quoted = lambda name: "\"" + name.replace("\"", "\"\"") + "\""
    rows = {t: db.execute("SELECT count(*) FROM " + quoted(t)).fetchone()[0] for t in tables}
    db.close()
    return rows
found = 0
if verb == "copy":
    counts = {}
    for top, dirs, names in os.walk(source):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(top, name)
            rel = os.path.relpath(path, source)
            if name.endswith(("-wal", "-shm", "-journal")) or os.path.islink(path) or not os.path.isfile(path):
                continue
            target = os.path.join(stage, "data", rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if is_sqlite(path):
                live = sqlite3.connect(path, timeout=60)
                copy = sqlite3.connect(target)
                live.backup(copy)
                copy.close(); live.close()
                rows = counted(target, False)
                if not rows:  # nothing in it yet: nothing a backup could keep
                    os.remove(target)
                    continue
                counts[rel] = rows
                found += 1
            else:
                shutil.copy2(path, target)
    with open(os.path.join(stage, "counts.json"), "w") as f:
        json.dump(counts, f)
else:
    with open(os.path.join(stage, "counts.json")) as f:
        expected = json.load(f)
    if not isinstance(expected, dict) or not expected:
        sys.exit("the snapshot holds no database with a table: not a backup")
    top = os.path.realpath(os.path.join(stage, "data"))
    for rel, tables in expected.items():
        path = os.path.realpath(os.path.join(top, rel))
        if (not isinstance(rel, str) or os.path.isabs(rel) or any(ord(c) < 32 for c in rel)
                or not path.startswith(top + os.sep) or not isinstance(tables, dict)):
            sys.exit("counts.json names a file outside the snapshot: not a backup this tool made")
        if not os.path.isfile(path):
            sys.exit(f"{rel}: missing from the snapshot")
        rows = counted(path, True)
        for table, count in tables.items():
            if rows.get(table) != count:
                sys.exit(f"{rel}: table {table} has {rows.get(table)} rows, {count} when it was taken"[:300])
        found += 1
print(found)'

init() {
    run_restic cat config > /dev/null 2>&1 || run_restic init > /dev/null ||
        fail "the repository $REPOSITORY could not be made (restic init failed, above)"
    echo "$REPOSITORY" > "$HERE/repository"
}

take() {
    local reason=${1:-manual} out found id size
    locked || failed take "another backup of $PROJECT still runs after 15 minutes"
    if [ -z "$DATA" ]; then
        found=$(find "$MEDIA" -type f 2> /dev/null | wc -l)
        [ "$found" -gt 0 ] || { echo "nothing to back up yet: $MEDIA holds no file"; exit 3; }
        rm -rf "$STAGE"; mkdir -m 0700 "$STAGE"
        echo "$found" > "$STAGE/media.count"
    else
        copied
    fi
    out=$(run_restic backup --json --quiet --host "$(hostname)" --tag "$TAG" --tag "reason:${reason// /_}" \
          "$STAGE" "$MEDIA" 2>&1) ||
        failed take "restic backup failed: $(grep -v '^{' <<< "$out" | tail -n 1 | cut -c1-300)"
    id=$(sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p' <<< "$out" | tail -n 1)
    size=$(sed -n 's/.*"total_bytes_processed":\([0-9]*\).*/\1/p' <<< "$out" | tail -n 1)
    [ -n "$id" ] || failed take "restic backup gave no snapshot id"
    rm -rf "$STAGE"
    noted take_failed ""
    noted backup "$id $(date +%s) ${size:-0} ${reason// /_}"
    echo "snapshot $id"
}

# copied: the app's databases, each copied by SQLite's online backup into the stage, as the app user.
copied() {
    local found
    [ -n "$(find "$DATA" -maxdepth 1 -type f ! -name '*-wal' ! -name '*-shm' ! -name '*-journal' -print -quit)" ] || {
        echo "nothing to back up yet: $DATA holds no file"; exit 3; }
    rm -rf "$STAGE"
    install -d -m 0700 -o "$APP_USER" -g "$APP_GROUP" "$STAGE"
    found=$(runuser -u "$APP_USER" -- python3 -I -S -c "$SQLITE" copy "$DATA" "$STAGE" 2>&1) ||
        failed take "the copy of $DATA failed: $(tail -n 1 <<< "$found" | cut -c1-300)"
    [ "$found" -gt 0 ] || { rm -rf "$STAGE"; echo "nothing to back up yet: no SQLite database with a table in $DATA"; exit 3; }
    mkdir -p "$MEDIA"
}

prune() {
    local out
    locked || failed prune "a backup of $PROJECT still runs after 15 minutes"
    # shellcheck disable=SC2086 # KEEP is words: --keep-within Nd --keep-daily N ...
    out=$(run_restic forget --quiet --tag "$TAG" $KEEP --prune 2>&1) ||
        failed prune "restic forget --prune failed: $(tail -n 1 <<< "$out" | cut -c1-300)"
    noted prune_failed ""
}

# chosen [ID]: the snapshot ID, or the latest in this host's repository (a fresh host of the
# same inventory name restores what its predecessor backed up).
chosen() {
    local id=${1:-latest}
    if [ "$id" = latest ]; then
        id=$(run_restic snapshots --json --tag "$TAG" 2> /dev/null | grep -o '"short_id":"[0-9a-f]*"' | tail -n 1 |
             cut -d'"' -f4 || true)
        [ -n "$id" ] || fail "no backup of $PROJECT in $REPOSITORY yet: take one with backup.py"
    fi
    [[ $id =~ ^[0-9a-f]{8,64}$ ]] || fail "not a snapshot id: $id (8 or more hex digits, see status.py)"
    run_restic snapshots --json "$id" 2> /dev/null | grep -q '"short_id"' ||
        fail "no snapshot $id of $PROJECT in $REPOSITORY: see status.py, revisions.log or restic snapshots"
    echo "$id"
}

# described ID: "ID (taken TIME on HOST)".
described() {
    local json
    json=$(run_restic snapshots --json "$1" 2> /dev/null) || fail "no snapshot $1 in $REPOSITORY"
    printf '%s (taken %s on %s)' "$1" "$(sed -n 's/.*"time":"\([^".]*\).*/\1/p' <<< "$json" | cut -c1-19)Z" \
        "$(sed -n 's/.*"hostname":"\([^"]*\)".*/\1/p' <<< "$json")"
}

# unpacked ID DIR: snapshot ID restored into DIR (emptied first), its stage checked; prints
# the number of databases found whole with their rows.
unpacked() {
    local out
    rm -rf "$2"
    mkdir -p "$2"
    out=$(run_restic restore --quiet "$1" --target "$2" "${@:3}" 2>&1) ||
        { echo "restic restore failed: $(tail -n 1 <<< "$out")"; return 1; }
    if [ -z "$DATA" ]; then  # uploads alone: every file as counted when taken
        [ -f "$2$STAGE/media.count" ] || { echo "snapshot $1 holds no count of $MEDIA: not a backup this tool made"; return 1; }
        local want have
        want=$(head -c 20 "$2$STAGE/media.count" | tr -cd 0-9)
        have=$(find "$2$MEDIA" -type f 2> /dev/null | wc -l)
        [ -n "$want" ] && [ "$want" -gt 0 ] && [ "$have" = "$want" ] ||
            { echo "snapshot $1 holds $have upload(s), ${want:-none} when it was taken"; return 1; }
        echo "$have upload(s)"
        return 0
    fi
    [ -d "$2$STAGE" ] || { echo "snapshot $1 holds no copy of $DATA"; return 1; }
    echo "$(python3 -I -S -c "$SQLITE" check - "$2$STAGE" 2>&1) database(s) whole"
}

verify() {
    local id out
    locked || failed verify "a backup of $PROJECT still runs after 15 minutes"
    if ! id=$(chosen latest 2>&1); then
        # Never backed up here, nothing in the repository: nothing to verify yet (exit 3, as
        # take's nothing to back up), not a failure.
        grep -q '^backup ' "$STATUS" 2> /dev/null || { echo "nothing to verify yet: no backup taken"; exit 3; }
        failed verify "${id#backup: }"
    fi
    out=$(run_restic check 2>&1) || failed verify "restic check found the repository damaged: $(grep -i -m 1 -A 1 'error\|fatal\|missing' <<< "$out" | tr -s '\n\t' '  ' | cut -c1-300)"
    out=$(unpacked "$id" "$HERE/verify" ${DATA:+--include "$STAGE"}) || { rm -rf "$HERE/verify"; failed verify "snapshot $id does not restore: $(tail -n 1 <<< "$out" | cut -c1-300)"; }
    rm -rf "$HERE/verify"
    noted verify_failed ""
    noted verified "$id $(date +%s) $out"
    local what="every table's rows"
    [ -n "$DATA" ] || what="every file"
    echo "snapshot $id restores: $out, $what as taken"
}

plan() {
    local id
    id=$(chosen "${1:-latest}")
    echo "would restore $(described "$id"), replacing:"
    [ -z "$DATA" ] || echo "  $DATA: $(find "$DATA" -type f | wc -l) file(s), $(du -sh "$DATA" | cut -f1)"
    echo "  $MEDIA: $(find "$MEDIA" -type f 2> /dev/null | wc -l) file(s), $(du -sh "$MEDIA" 2> /dev/null | cut -f1)"
    echo "  (kept beside as <folder>.replaced-<time>${UNITS:+; $UNITS stopped while they move})"
}

restore() {
    local id scratch stamp out units=() unit step=
    id=$(chosen "${1:-latest}")
    locked || fail "a backup of $PROJECT still runs after 15 minutes"
    scratch=$HERE/restore
    out=$(unpacked "$id" "$scratch") || { rm -rf "$scratch"; fail "snapshot $id cannot be restored: $out"; }
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    # Everything that can fail before the app stops has run; from here, a failure puts back
    # what moved and starts the app again.
    for unit in $UNITS; do systemctl is-active --quiet "$unit" && units+=("$unit"); done
    [ ${#units[@]} = 0 ] || systemctl stop "${units[@]}"
    trap 'undo "$step"' ERR
    if [ -n "$DATA" ]; then
        step=data-aside; mv -T "$DATA" "$DATA.replaced-$stamp"
        step=data-in; mv -T "$scratch$STAGE/data" "$DATA"
        chown -R "$APP_USER:$APP_GROUP" "$DATA"; chmod 0750 "$DATA"
    fi
    step=media-aside; [ ! -e "$MEDIA" ] || mv -T "$MEDIA" "$MEDIA.replaced-$stamp"
    step=media-in; if [ -d "$scratch$MEDIA" ]; then mv -T "$scratch$MEDIA" "$MEDIA"; else mkdir "$MEDIA"; fi
    step=owner; chown -R "$APP_USER:$APP_GROUP" "$MEDIA"; chmod "${MEDIA_MODE:-0750}" "$MEDIA"
    trap - ERR
    rm -rf "$scratch"
    # the data may be from before migrations: a release deployed again migrates
    [ -z "$DATA" ] || touch "$(dirname "$DATA")/.unmigrated"
    [ ${#units[@]} = 0 ] || systemctl start "${units[@]}"
    echo "restored $(described "$id"); what was there is kept as ${DATA:+$DATA.replaced-$stamp and }$MEDIA.replaced-$stamp"
}

# undo STEP: restore's failure at STEP: what moved goes back, the app starts again.
undo() {
    trap - ERR
    set +e
    case $1 in
        owner|media-in) [ ! -e "$MEDIA.replaced-$stamp" ] || { rm -rf "$MEDIA"; mv -T "$MEDIA.replaced-$stamp" "$MEDIA"; } ;;&
        owner|media-in|media-aside) [ -z "$DATA" ] || rm -rf "$DATA" ;;&
        owner|media-in|media-aside|data-in) [ -z "$DATA" ] || mv -T "$DATA.replaced-$stamp" "$DATA" ;;
    esac
    rm -rf "$scratch"
    [ ${#units[@]} = 0 ] || systemctl start "${units[@]}"
    fail "the restore of $id failed ($1): the data and uploads that were there are back in place, the app started"
}

command=${1:-}
shift || true
case "$command" in
    init) init ;;
    take) take "$@" ;;
    prune) prune ;;
    verify) verify ;;
    plan) plan "$@" ;;
    restore) restore "$@" ;;
    last) cat "$STATUS" 2> /dev/null || true ;;
    *) fail "usage: backup.sh init|take REASON|prune|verify|plan [ID]|restore [ID]|last" ;;
esac
