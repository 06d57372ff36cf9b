#!/bin/sh
# Puts each site's database back as it was before a deploy, with the code of the release that migrated it.
# The activation supervisor (supervisor.sh) runs it as root before it switches the code back:
#   sh schema-rollback.sh DIR FILE
# DIR/FILE, written by the deployer before the switch: "policy reverse|restore|keep" and "host NAME", then
# for each site a block of lines that "end" closes:
#   site NAME                 manage PATH (the new release's manage-<site>)
#   database NAME OWNER       units UNIT... (the site's gunicorn units)
#   backups DIR               backup NAME (the dump taken before the deploy, when one was)
#   apply APP.MIGRATION       each migration the deploy applies, in order
#   target APP MIGRATION      each app that moves, and the migration it was at before (or zero)
#   irreversible APP.MIGRATION  each one that cannot be unapplied
# reverse: `migrate APP MIGRATION` for each target, and when that fails the schema is kept; restore: the dump
# over the database (writes since the deploy are gone), kept without a dump; keep: left as it is.
# It says what it did, a sentence per site, in DIR/schema.said; the commands' output goes to DIR/schema.log.
# Exits 1 when a site's schema was kept.
set -u
dir=$1 file=$2
said="$dir/schema.said" log="$dir/schema.log"
: > "$said"
status=0 policy=reverse host=host
say() { printf '%s\n' "$*" >> "$said"; }
# Words as a list for a sentence: " a b" -> "a, b".
listed() { printf '%s' "$1" | sed 's/^ *//; s/ *$//; s/  */, /g'; }
clear_site() { site='' manage='' database='' owner='' units='' backups='' applied='' targets='' irreversible='' backup=''; }
# The deploy's migrations still applied, as the new release's code sees them.
still_applied() {
    listing=$("$manage" showmigrations --plan 2>> "$log") || { echo "$applied"; return; }
    for label in $applied; do
        if printf '%s\n' "$listing" | grep -qxF "[X]  $label"; then printf '%s ' "$label"; fi
    done
}
keep() {
    status=1
    left=$(listed "$(still_applied)")
    text="$site: $1, so its schema stays ahead of the old code: ${left:-none of the migrations of the deploy} stay applied"
    if [ -n "$backup" ]; then
        text="$text; the data from before the deploy is in $backup: \`djdeploy db.restore $host --site $site --backup $backup\`"
    else
        text="$text; no dump was taken before the deploy"
    fi
    say "$text."
}
reverse() {
    printf '%s\n' "$targets" | while read -r app target; do
        [ -n "$app" ] || continue
        "$manage" migrate --noinput "$app" "$target" >> "$log" 2>&1 || exit 1
    done
}
# The targets as the commands that reached them: "migrate notes 0001_initial, migrate shop zero".
commands() { printf '%s' "$targets" | sed 's/^/migrate /' | paste -s -d ';' - | sed 's/;/, /g'; }
restore_dump() {
    # shellcheck disable=SC2086 # the units are words
    sh "$dir/db.sh" restore "$backups" "$backup" "$database" "$owner" $units >> "$log" 2>&1
}
back() {
    [ -n "$applied" ] || return 0
    case $policy in
    reverse)
        if reverse; then
            say "$site: unapplied $(listed "$applied") with the code of the new release ($(commands))."
        elif [ -n "$irreversible" ]; then
            keep "$(listed "$irreversible") cannot be unapplied"
        else
            keep "unapplying failed ($log)"
        fi
        ;;
    restore)
        if [ -z "$backup" ]; then
            keep "rollback.database is restore, but no dump was taken before the deploy"
        elif restore_dump; then
            say "$site: restored $backup, the dump from before the deploy: writes since the deploy are gone."
        else
            keep "restoring $backup failed ($log)"
        fi
        ;;
    *)
        keep "rollback.database is keep"
        ;;
    esac
}
clear_site
while read -r key rest; do
    case $key in
    policy) policy=$rest ;;
    host) host=$rest ;;
    site) site=$rest ;;
    manage) manage=$rest ;;
    database) database=${rest% *} owner=${rest#* } ;;
    units) units=$rest ;;
    backups) backups=$rest ;;
    backup) backup=$rest ;;
    apply) applied="$applied $rest" ;;
    irreversible) irreversible="$irreversible $rest" ;;
    target) targets="$targets$rest
" ;;
    end)
        # Management commands must not read the rest of this file.
        back < /dev/null
        clear_site
        ;;
    esac
done < "$dir/$file"
exit "$status"
