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

# What the site's configuration needs (see check-modules.py), each missing package named with its line.
host_run "$out/bin/python" "$checkModules" "$requiredModules"
