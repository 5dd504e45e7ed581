#!/bin/sh
# The balancer's tool (HAProxy's runtime API, on its admin socket), as the deploy runs it
# on a balancer host, as root:
#   balancer.sh drain <backend> <server> [seconds]  no new requests; wait until none is in flight
#   balancer.sh ready <backend> <server>            back in the rotation (after its health gate)
#   balancer.sh drained <backend>                   the servers left drained or in maintenance
#   balancer.sh servers <backend>                   each server and its status (UP, DOWN, DRAIN, MAINT...)
set -eu
SOCKET=/run/haproxy/admin.sock
api() { printf '%s\n' "$1" | socat -t 5 stdio "unix-connect:$SOCKET"; }
name_ok() { case "$1" in ''|*[!A-Za-z0-9_.:-]*) echo "balancer.sh: not a name: $1" >&2; exit 2;; esac; }
if [ "${1:-}" = drained ] && [ $# -eq 2 ]; then
	name_ok "$2"
	# show servers state: be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...;
	# admin state bits: 0x01 maintenance (forced), 0x08 drain (forced).
	api "show servers state $2" | while read -r _ be _ srv _ _ admin _; do
		case $admin in ''|*[!0-9]*) continue;; esac
		if [ "$be" = "$2" ] && [ $(( admin & 9 )) -ne 0 ]; then echo "$srv"; fi
	done
	exit 0
fi
if [ "${1:-}" = servers ] && [ $# -eq 2 ]; then
	name_ok "$2"
	api "show stat" | awk -F, -v b="$2" '$1 == b && $2 != "FRONTEND" && $2 != "BACKEND" { print $2, $18 }'
	exit 0
fi
[ $# -ge 3 ] || { echo "usage: balancer.sh drain|ready <backend> <server> [seconds] | drained <backend>" >&2; exit 2; }
verb=$1 backend=$2 server=$3
name_ok "$backend"; name_ok "$server"
# The server's current and queued requests (show stat: scur is field 5, qcur field 3).
in_flight() {
	api "show stat" | awk -F, -v b="$backend" -v s="$server" '$1 == b && $2 == s { print $3 + $5; found = 1 }
		END { if (!found) print "none" }'
}
case $verb in
drain)
	seconds=${4:-30}
	out=$(api "set server $backend/$server state drain")
	[ -z "$out" ] || { echo "balancer.sh: HAProxy: $out" >&2; exit 1; }
	n=$(in_flight)
	[ "$n" != none ] || { echo "balancer.sh: HAProxy has no server $backend/$server" >&2; exit 1; }
	deadline=$(( $(date +%s) + seconds ))
	while [ "$n" != 0 ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "$backend/$server: still $n request(s) in flight after ${seconds}s: going on" >&2
			exit 0
		fi
		sleep 0.05
		n=$(in_flight)
	done
	;;
ready)
	out=$(api "set server $backend/$server state ready")
	[ -z "$out" ] || { echo "balancer.sh: HAProxy: $out" >&2; exit 1; }
	;;
*)
	echo "balancer.sh: unknown verb $verb: drain, ready or drained" >&2; exit 2
	;;
esac
