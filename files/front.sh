#!/bin/bash
# The front door's tool (Caddy), as the deploy runs it on every host with a front, as root:
#   front.sh restart|reload|start PORT...   take the configuration in place, once Caddy has
#                                           checked it: restart (a changed unit), reload
#                                           (graceful; a restart if it is not running), start
#   front.sh digest                         the digest of the files Caddy runs
# A configuration Caddy refuses is one line, and the running one stays; a start that fails
# is one line with Caddy's reason and what holds the site's ports (PORT...). Once Caddy
# took the files, their digest is noted in .applied (the FrontApplied fact compares it with
# the files in place, so a run that stopped before the front took them is caught up).
# The configuration lives beside this file (the host's Caddyfile, sites/, certs/); the
# unit's drop-in is FRONT_DROPIN, which the deploy sets (AppSettings.front_dropin).
set -u  # failures are handled where they happen (each is one line)
export LC_ALL=C  # globs sorted byte by byte, as the fact's sh (dash) sorts them: one digest
DIR=$(cd "$(dirname "$0")" && pwd)
UNIT=caddy.service
DROPIN=${FRONT_DROPIN:?front.sh: FRONT_DROPIN, the drop-in of the front unit, is not set}

fail() { echo "$*" >&2; exit 1; }

# The files whose content Caddy runs (the same list as ops/facts.py:FrontApplied reads).
digest() {
    cat "$DROPIN" "$DIR/Caddyfile" "$DIR"/sites/*.caddy "$DIR"/certs/* 2>/dev/null | sha1sum | cut -c1-40
}

take() {
    local action=$1 out since ports holders; shift
    for port in "$@"; do [[ $port =~ ^[0-9]+$ ]] || fail "front.sh: not a port: $port"; done
    [ $# -gt 0 ] || fail "front.sh: which ports does the site use?"
    out=$(caddy validate --config "$DIR/Caddyfile" --adapter caddyfile 2>&1) ||
        fail "the front's configuration was refused by caddy, the running one stays: $(printf '%s' "$out" |
              grep -i error | tail -n 1 | cut -c1-300)"
    since=$(date +%s)
    case $action in
        restart) systemctl daemon-reload && systemctl restart "$UNIT" ;;
        reload) systemctl reload-or-restart "$UNIT" ;;
        start) systemctl daemon-reload && systemctl start "$UNIT" ;;
    esac 2>/dev/null || {
        ports=$(IFS='|'; echo "$*")
        holders=$(ss -Hltnp | grep -E ":($ports) " | grep -o 'users:(("[^"]*",pid=[0-9]*' | sed 's/users:((//' |
                  sort -u | tr '\n' ' ')
        fail "the front door ($UNIT) did not start: $(journalctl -u "$UNIT" --since "@$since" -o cat --no-pager |
              grep -E '^Error: |"error"' | tail -n 1 | cut -c1-300) (journalctl -u caddy); port ${ports//|/ or } held by: $holders"
    }
    digest > "$DIR/.applied"
}

command=${1:-}
shift || true
case "$command" in
    restart | reload | start) take "$command" "$@" ;;
    digest) digest ;;
    *) fail "usage: front.sh restart|reload|start PORT... | digest" ;;
esac
