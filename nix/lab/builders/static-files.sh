# Builds a staticFiles path: collectstatic's output, with settings that need no real
# database, secret or media directory.
export STATIC_ROOT="$out"
export DJANGO_SETTINGS_MODULE="$settingsModule"
export SECRET_KEY=collectstatic-needs-no-secret
export DATABASE_URL=sqlite://:memory:
export MEDIA_ROOT="$NIX_BUILD_TOP/media"
export ALLOWED_HOSTS=localhost
"$site/bin/python" -m django collectstatic --noinput --verbosity 1
