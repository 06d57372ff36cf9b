# Builds a djangoSite path: the project's code in app/ and bin/python, the interpreter
# with the code and the dependencies on its search path.
# shellcheck source=common.sh
. "$common"
check_python

code="$out/app"
mkdir -p "$code" "$out/bin"
cp -R "$src/." "$code"
chmod -R u+w "$code"
compile_python "$code"

cat >"$out/bin/python" <<WRAPPER
#!/bin/sh
PYTHONPATH="$code:$deps/lib/python$pythonVersion/site-packages\${PYTHONPATH:+:\$PYTHONPATH}"
export PYTHONPATH
exec $python "\$@"
WRAPPER
chmod 555 "$out/bin/python"

# Each word of $requiredModules is a module the site needs, or alternatives joined by "|".
missing=""
for wanted in $requiredModules; do
    if ! host_run "$out/bin/python" -c 'import importlib.util, sys
sys.exit(not any(importlib.util.find_spec(name) for name in sys.argv[1].split("|")))' "$wanted"; then
        missing="$missing ${wanted%%|*}"
    fi
done
if [ -n "$missing" ]; then
    echo "error: the site's dependencies lack:$missing (the chosen worker class and the PostgreSQL database need them); add a pinned line for each (name==version) to the project's lock file or requirements" >&2
    exit 1
fi
