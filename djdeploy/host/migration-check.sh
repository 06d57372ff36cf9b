#!/bin/sh
# Whether a release has migrations a site's database has not applied, told without starting Django, as
#   sh -c "$(cat migration-check.sh)" djdeploy-migration-check MANAGE RUNNING DATABASE CACHE [KNOWN]
# MANAGE: the release's manage-<site> command (a store path); RUNNING: the one the host runs now (it may be
# missing, or MANAGE itself); DATABASE: the site's local PostgreSQL database; CACHE: a directory for each
# release's list of migration files (a store path never changes, so neither does its list); KNOWN: a file
# that gets, when the answer is "applied", the migrations that counted (APP.NAME a line), all applied.
# Prints "applied" when the database's django_migrations has every migration file (APP/migrations/NAME.py) in
# MANAGE's closure that counts, "new" when the database does not exist yet (the site's first deploy: every
# migration applies and there is nothing to go back to), else "unknown": then only the release's own code
# can tell. A file counts when its app has migrations applied already or content types (it was installed:
# an app migrated back to zero keeps them), or when RUNNING's closure has no migrations of that app (an app
# new in this release): a dependency ships migrations of apps that may not be installed
# (django.contrib.sites), and only Django knows INSTALLED_APPS. So an app without models that was migrated
# back to zero, or that a dependency already shipped and this release installs, is not seen here. The answer
# is "unknown" too when no file counts, when a migration applied has no file (a directory that is not its
# app's label, as Wagtail's; an app removed from the project; a squashed migration's replaced ones), and when
# the closure's Python names MIGRATION_MODULES outside Django (migrations in modules of other names).
set -u
manage=$1 running=$2 database=$3 cache=$4 known=${5:-}
cd / || exit 1
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
# "APP NAME" for each migration file of a release (its manage script's store path), sorted, and "* *" when
# its Python names MIGRATION_MODULES outside Django; kept in CACHE. A listing that fails keeps nothing.
files_of() {
    kept="$cache/$(basename "$1")"
    if [ ! -s "$kept" ]; then
        store=$(dirname "$1") work_of_list="$cache/.$$"
        # One find for the whole closure (store paths hold no spaces): a NixOS closure has hundreds of paths.
        if ! nix-store --query --requisites "$1" > "$work_of_list.paths" ||
            ! xargs -r sh -c 'exec find "$@" -path "*/migrations/*.py" ! -path "*/django/db/migrations/*"' \
                find < "$work_of_list.paths" > "$work_of_list.found"; then
            rm -f "$work_of_list".*
            return 1
        fi
        sed -n 's|.*/\([^/]*\)/migrations/\([^/_][^/]*\)\.py$|\1 \2|p' "$work_of_list.found" |
            sort -u > "$work_of_list"
        # MIGRATION_MODULES is searched for in the store paths that ship migrations (the project's, its apps'),
        # Django's own code aside.
        sed -n "s|^\($store/[^/]*\)/.*|\1|p" "$work_of_list.found" | sort -u |
            xargs -r grep -rl --include='*.py' --exclude-dir=django MIGRATION_MODULES > "$work_of_list.named"
        if [ -s "$work_of_list.named" ]; then echo '* *' >> "$work_of_list"; fi
        rm -f "$work_of_list".*
        mv -f "$work_of_list" "$kept" || return 1
        # The lists of releases that left the store go with them (they never change, but can be many); a
        # list being written is a dot file.
        for list in "$cache"/*; do
            [ -e "$store/${list##*/}" ] || rm -f "$list"
        done
    fi
    cat "$kept"
}
mkdir -p "$cache"
# The files are listed while the database answers.
{
    files_of "$(readlink -f "$manage")" > "$work/disk" || exit 1
    if [ -e "$running" ]; then files_of "$(readlink -f "$running")"; fi > "$work/old"
} &
psql() { runuser -u postgres -- psql -XAtq "$@" 2>/dev/null; }
# One query: the migrations applied ("APP NAME" lines), then the apps with content types ("APP" lines; none
# without django.contrib.contenttypes, which only makes fewer files count).
if ! psql -F ' ' -v ON_ERROR_STOP=1 -d "$database" > "$work/rows" <<'SQL'
SELECT app, name FROM django_migrations;
SELECT to_regclass('django_content_type') IS NOT NULL AS content_types \gset
\if :content_types
SELECT DISTINCT app_label FROM django_content_type;
\endif
SQL
then
    if echo "SELECT 'exists' FROM pg_database WHERE datname = :'name'" | psql -d postgres -v name="$database" |
        grep -qx exists; then
        echo unknown
    else
        echo new
    fi
    exit 0
fi
awk 'NF == 2' "$work/rows" | sort -u > "$work/applied"
awk 'NF == 1' "$work/rows" > "$work/modelled"
wait "$!" || { echo unknown; exit 0; }
awk 'FILENAME == ARGV[1] { installed[$1] = 1; next }
     FILENAME == ARGV[2] { installed[$1] = 1; next }
     FILENAME == ARGV[3] { before[$1] = 1; next }
     installed[$1] || !before[$1]' "$work/applied" "$work/modelled" "$work/old" "$work/disk" > "$work/counted"
# Every file that counts is applied, and every migration applied has its file.
if [ -s "$work/counted" ] && ! grep -qx '\* \*' "$work/disk" &&
    [ -z "$(comm -23 "$work/counted" "$work/applied")" ] && [ -z "$(comm -23 "$work/applied" "$work/disk")" ]; then
    if [ -n "$known" ]; then sed 's/ /./' "$work/counted" > "$known" || exit 1; fi
    echo applied
else
    echo unknown
fi
