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
# (django.contrib.sites), and only Django knows INSTALLED_APPS: the answer is "unknown" when the .py files
# beside the settings module, or the environment's own variables, differ from RUNNING's (an app may be newly
# installed). So an app without models migrated back to zero, or one newly installed by settings kept
# elsewhere (an imported module, a file outside the store), is not seen here. The answer
# is "unknown" too when no file counts, when a migration applied has no file (a directory that is not its
# app's label, as Wagtail's; an app removed from the project; a squashed migration's replaced ones), and when
# the closure's Python names MIGRATION_MODULES outside Django (migrations in modules of other names).
set -u
manage=$1 running=$2 database=$3 cache=$4 known=${5:-}
cd / || exit 1
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
# A release's list (its manage script's store path), kept in CACHE: "APP NAME" for each migration file,
# sorted; "@settings SUM", SUM the checksum of the .py files beside its settings module and of its
# environment's own variables ("-" when they cannot be found); "@migration-modules" when its Python names
# MIGRATION_MODULES outside Django. A listing that fails keeps nothing.
files_of() {
    kept="$cache/$(basename "$1")"
    if [ ! -s "$kept" ]; then
        store=$(dirname "$1") list="$cache/.$$"
        nix-store --query --requisites "$1" > "$list.paths" || { rm -f "$list".*; return 1; }
        # The settings module, from the environment wrapper among the release's single-file paths.
        while read -r path; do if [ -f "$path" ]; then printf '%s\n' "$path"; fi; done < "$list.paths" |
            xargs -r grep -l "^export DJANGO_SETTINGS_MODULE='" > "$list.environment"
        module=$(xargs -r sed -n "s/^export DJANGO_SETTINGS_MODULE='\(.*\)'$/\1/p" < "$list.environment" |
            head -n 1)
        # Without a module, a pattern no path has ("//").
        case $module in *[!A-Za-z0-9_.]* | "") settings=/ ;; *) settings=$(printf '%s' "$module" | tr . /) ;; esac
        # One find for the whole closure (store paths hold no spaces): a NixOS closure has hundreds of paths.
        # shellcheck disable=SC2016 # expanded by the sh that xargs starts
        if ! xargs -r sh -c 'settings=$1; shift; exec find "$@" \( -path "*/migrations/*.py" \
                ! -path "*/django/db/migrations/*" \) -o -path "*/$settings.py" -o -path "*/$settings/__init__.py"' \
                find "$settings" < "$list.paths" > "$list.found"; then
            rm -f "$list".*
            return 1
        fi
        sed -n 's|.*/\([^/]*\)/migrations/\([^/_][^/]*\)\.py$|\1 \2|p' "$list.found" | sort -u > "$list"
        beside=$(grep -m 1 -e "/$settings\.py$" -e "/$settings/__init__\.py$" "$list.found")
        if [ -n "$beside" ] && [ -s "$list.environment" ]; then
            sum=$({ cat "${beside%/*}"/*.py && xargs grep -h '^export ' < "$list.environment" | grep -v "$store/"; } |
                cksum | tr ' ' -)
            echo "@settings $sum" >> "$list"
        else
            echo "@settings -" >> "$list"
        fi
        # MIGRATION_MODULES is searched for in the store paths that ship migrations (the project's, its apps'),
        # Django's own code aside.
        sed -n "s|^\($store/[^/]*\)/.*migrations/.*|\1|p" "$list.found" | sort -u |
            xargs -r grep -rl --include='*.py' --exclude-dir=django MIGRATION_MODULES > "$list.named"
        if [ -s "$list.named" ]; then echo '@migration-modules' >> "$list"; fi
        rm -f "$list".*
        mv -f "$list" "$kept" || return 1
        # The lists of releases that left the store go with them (they never change, but can be many); a
        # list being written is a dot file.
        for other in "$cache"/*; do
            [ -e "$store/${other##*/}" ] || rm -f "$other"
        done
    fi
    cat "$kept"
}
mkdir -p "$cache"
# The files are listed while the database answers.
{
    files_of "$(readlink -f "$manage")" > "$work/new.list" || exit 1
    if [ -e "$running" ]; then files_of "$(readlink -f "$running")" || exit 1; fi > "$work/old.list"
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
grep -v '^@' "$work/new.list" > "$work/disk"
grep -v '^@' "$work/old.list" > "$work/old"
# Whether an app that ships migrations without rows is installed only its settings tell: a release whose
# settings differ from the running one's (or cannot be found) is asked of Django.
same_settings=yes
if [ -s "$work/old.list" ] && ! cmp -s "$work/old.list" "$work/new.list"; then
    settings_now=$(grep '^@settings ' "$work/old.list") settings_new=$(grep '^@settings ' "$work/new.list")
    if [ "$settings_new" != "$settings_now" ] || [ "$settings_new" = "@settings -" ]; then same_settings=no; fi
fi
awk 'FILENAME == ARGV[1] { installed[$1] = 1; next }
     FILENAME == ARGV[2] { installed[$1] = 1; next }
     FILENAME == ARGV[3] { before[$1] = 1; next }
     installed[$1] || !before[$1]' "$work/applied" "$work/modelled" "$work/old" "$work/disk" > "$work/counted"
# Every file that counts is applied, and every migration applied has its file.
if [ -s "$work/counted" ] && [ "$same_settings" = yes ] && ! grep -qx '@migration-modules' "$work/new.list" &&
    [ -z "$(comm -23 "$work/counted" "$work/applied")" ] && [ -z "$(comm -23 "$work/applied" "$work/disk")" ]; then
    if [ -n "$known" ]; then sed 's/ /./' "$work/counted" > "$known" || exit 1; fi
    echo applied
else
    echo unknown
fi
