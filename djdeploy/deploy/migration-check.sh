#!/bin/sh
# Whether a release has migrations a site's database has not applied, told without starting Django, as
#   sh -c "$(cat migration-check.sh)" djdeploy-migration-check MANAGE DATABASE
# MANAGE: the release's manage-<site> command (a store path); DATABASE: the site's local PostgreSQL database.
# Prints "applied" when every migration file in MANAGE's closure (APP/migrations/NAME.py) is a row of the
# database's django_migrations, "new" when the database does not exist yet (the site's first deploy: every
# migration applies, and there is nothing to go back to), else "unknown": then only the release's own code
# can tell. A file whose
# directory is not its app's label, or a squashed migration, only ever makes the answer "unknown".
set -u
manage=$1 database=$2
cd / || exit 1
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
on_disk() {
    nix-store --query --requisites "$manage" | while read -r path; do
        find "$path" -path '*/migrations/*.py' ! -path '*/django/db/migrations/*'
    done | sed -n 's|.*/\([^/]*\)/migrations/\([^/_][^/]*\)\.py$|\1 \2|p' | sort -u
}
# The files are listed while the database answers.
on_disk > "$work/disk" &
psql() { runuser -u postgres -- psql -XAtq "$@" 2>/dev/null; }
if ! psql -F ' ' -d "$database" -c 'SELECT app, name FROM django_migrations' > "$work/applied.raw"; then
    if echo "SELECT 'exists' FROM pg_database WHERE datname = :'name'" | psql -d postgres -v name="$database" |
        grep -qx exists; then
        echo unknown
    else
        echo new
    fi
    exit 0
fi
sort -u "$work/applied.raw" > "$work/applied"
wait "$!" || { echo unknown; exit 0; }
if [ -s "$work/disk" ] && [ -z "$(comm -23 "$work/disk" "$work/applied")" ]; then
    echo applied
else
    echo unknown
fi
