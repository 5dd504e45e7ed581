#!/bin/bash
# The forced command of the other host's pgBackRest key (~postgres/.ssh/authorized_keys):
# pgBackRest's remote, for this stanza and its paths alone. Anything else (a shell, another
# pgbackrest command such as stanza-delete, another path, a config or command of the
# caller's choosing) is refused and logged. Settings: /etc/pgbackrest/djdeploy.env.
set -f -u
. /etc/pgbackrest/djdeploy.env  # STANZA VERSION
refused() {
    logger -t djdeploy-pgbackrest -p auth.warning "refused from ${SSH_CLIENT%% *}: ${SSH_ORIGINAL_COMMAND:0:300}"
    echo "only pgBackRest's remote for stanza $STANZA may run here" >&2
    exit 1
}
read -r -a words <<< "${SSH_ORIGINAL_COMMAND:-}"
[ "${#words[@]}" -ge 3 ] && [[ ${words[0]} =~ (^|/)pgbackrest$ ]] && [[ ${words[-1]} =~ ^[a-z-]+:remote$ ]] || refused
for word in "${words[@]:1:${#words[@]}-2}"; do
    case $word in
        --exec-id=*|--log-level-console=*|--log-level-file=*|--log-level-stderr=*|--log-subprocess|--no-log-timestamp) ;;
        --process=[0-9]*|--remote-type=pg|--remote-type=repo|--repo=[0-9]*|--pg=[0-9]*|--buffer-size=[0-9]*|--compress-level-network=[0-9]*) ;;
        --protocol-timeout=[0-9]*|--db-timeout=[0-9]*|--io-timeout=[0-9]*|--pg1-port=[0-9]*|--pg1-socket-path=/var/run/postgresql) ;;
        "--stanza=$STANZA"|"--pg1-path=/var/lib/postgresql/$VERSION/main"|--repo1-path=/var/lib/pgbackrest) ;;
        *) refused ;;
    esac
done
exec /usr/bin/pgbackrest "${words[@]:1}"
