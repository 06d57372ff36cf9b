# Builds a staticFiles path: collectstatic's output, with settings that need no real
# database, secret or media directory, run by the hosts' Python.
# shellcheck source=common.sh
. "$common"
export STATIC_ROOT="$out"
export DJANGO_SETTINGS_MODULE="$settingsModule"
export SECRET_KEY=collectstatic-needs-no-secret
export DATABASE_URL=sqlite://:memory:
export MEDIA_ROOT="$NIX_BUILD_TOP/media"
export ALLOWED_HOSTS=localhost
errors="$NIX_BUILD_TOP/collectstatic.err"
if ! host_run "$site/bin/python" -m django collectstatic --noinput --verbosity 1 2>"$errors"; then
    tail -n 6 "$errors" >&2
    # django-environ says "Set the NAME environment variable"; os.environ["NAME"] raises KeyError: 'NAME'.
    variable=$(sed -n -e "s/.*Set the \([A-Za-z_][A-Za-z0-9_]*\) environment variable.*/\1/p" \
        -e "s/^KeyError: '\([A-Za-z_][A-Za-z0-9_]*\)'.*/\1/p" "$errors" | tail -n 1)
    # ManifestStaticFilesStorage rewrites the references in what it collects (CSS url(), sourceMappingURL).
    referenced=$(sed -n "s/^ValueError: The file '\(.*\)' could not be found with .*/\1/p" "$errors" | tail -n 1)
    if [ -n "$variable" ]; then
        echo "error: the settings module $settingsModule needs the environment variable $variable; set it in the site's extraEnv (env: in lab.yaml), or in a file of extraEnvFiles if it is a secret" >&2
    elif [ -n "$referenced" ]; then
        echo "error: collectstatic could not find the static file '$referenced', which a collected file refers to (a CSS url() or a sourceMappingURL comment): the manifest of the static files cannot be written without it; add it to the frontend build's output or an app's static/ folder, or remove the reference" >&2
    elif ! "$site/bin/python" -c 'import importlib, sys; importlib.import_module(sys.argv[1])' "$settingsModule" 2>/dev/null; then
        echo "error: the settings module $settingsModule raises an exception when it is imported; the last lines of its traceback are above: fix the line they name" >&2
    else
        echo "error: collectstatic failed with the settings module $settingsModule; the last lines of its error are above" >&2
    fi
    exit 1
fi
