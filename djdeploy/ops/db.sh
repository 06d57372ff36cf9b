#!/bin/sh
# The database dumps of a site, on its host, run as root by djdeploy's db tasks (djdeploy/ops/db.py):
#   db.sh backup DIR DATABASE LABEL [KEEP]      dump DATABASE into DIR; print "NAME SIZE"; with KEEP, then
#                                               remove all but the newest KEEP dumps labelled LABEL
#   db.sh list DIR                              print "NAME SIZE MTIME" for each dump, oldest first
#   db.sh restore DIR NAME DATABASE OWNER UNIT...
#                                               stop the units, restore NAME over DATABASE (its objects owned
#                                               by OWNER), start the units again
#   db.sh cat DIR NAME                          write NAME to standard output
# Dumps are pg_dump's custom format, written by root under umask 077: only root reads them.
set -eu
umask 077
action=$1
shift

case $action in
backup)
    dir=$1 database=$2 label=$3
    mkdir -p "$dir"
    chmod 700 "$(dirname "$dir")" "$dir"
    name="$(date -u +%Y%m%dT%H%M%SZ)-$label.dump"
    partial="$dir/.$name.partial"
    if ! runuser -u postgres -- pg_dump --format=custom --dbname="$database" >"$partial"; then
        rm -f "$partial"
        echo "pg_dump of $database failed" >&2
        exit 1
    fi
    mv "$partial" "$dir/$name"
    printf '%s %s\n' "$name" "$(stat -c %s "$dir/$name")"
    if [ -n "${4:-}" ]; then
        # Names start with their UTC time: in name order, the oldest first.
        find "$dir" -maxdepth 1 -name "*-$label.dump" | sort -r | tail -n +"$(($4 + 1))" |
            while read -r old; do rm -f "$old"; done
    fi
    ;;
list)
    dir=$1
    [ -d "$dir" ] || exit 0
    for dump in "$dir"/*.dump; do
        [ -e "$dump" ] || continue
        printf '%s %s\n' "$(basename "$dump")" "$(stat -c '%s %Y' "$dump")"
    done
    ;;
restore)
    dir=$1 name=$2 database=$3 owner=$4
    shift 4
    [ -f "$dir/$name" ] || { echo "no backup $name in $dir" >&2; exit 1; }
    systemctl stop "$@"
    # The site starts again whatever the restore did: its socket first, so requests wait for gunicorn.
    trap 'systemctl start "$@"' EXIT
    runuser -u postgres -- pg_restore --clean --if-exists --no-owner --role="$owner" \
        --exit-on-error --dbname="$database" <"$dir/$name"
    ;;
cat)
    dir=$1 name=$2
    cat "$dir/$name"
    ;;
*)
    echo "db.sh: unknown action $action" >&2
    exit 2
    ;;
esac
