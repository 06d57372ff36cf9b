# Shell functions shared by the lab builders (sourced, not run).
# They read $python, $pythonVersion and $wheelCache from the derivation.

check_python() {
    if ! actual=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); then
        echo "error: cannot run $python; the lab builds need Debian's python3 package" >&2
        exit 1
    fi
    if [ "$actual" != "$pythonVersion" ]; then
        echo "error: $python is Python $actual, but the lab hosts run Python $pythonVersion" >&2
        exit 1
    fi
}

check_pip() {
    if ! "$python" -m pip --version >/dev/null 2>&1; then
        echo "error: $python has no pip; install Debian's python3-pip package" >&2
        exit 1
    fi
}

# The store is read-only and resets every modification time, so byte code is checked
# against nothing: the sources it was compiled from can never change.
compile_python() {
    "$python" -m compileall -q -j "$NIX_BUILD_CORES" --invalidation-mode unchecked-hash "$1"
}

wheel_cache_writable() {
    [ -n "$wheelCache" ] && mkdir -p "$wheelCache" 2>/dev/null && [ -w "$wheelCache" ]
}

# pip_install TARGET REQUIREMENTS [OPTION...]
# Installs the wheels of REQUIREMENTS into TARGET. The wheel cache is tried first without
# the network (a lab host that builds its own system reads it, read-only, and has no
# network); whatever it lacks is downloaded into it, and the install runs again from it.
# With exact pins the result is the same whichever way the wheels come.
pip_install() {
    target=$1
    requirements=$2
    shift 2
    set -- --no-cache-dir --disable-pip-version-check --no-input --progress-bar off \
        --only-binary=:all: -r "$requirements" "$@"
    if [ -n "$wheelCache" ] && [ -d "$wheelCache" ] && "$python" -m pip install --no-compile \
        --target "$target" --no-index --find-links "$wheelCache" "$@" \
        >"$NIX_BUILD_TOP/pip-offline.log" 2>&1; then
        return
    fi
    rm -rf "$target"
    if ! wheel_cache_writable; then
        echo "warning: the wheel cache $wheelCache is missing, not writable or lacks wheels; downloading every wheel" >&2
        "$python" -m pip install --no-compile --target "$target" "$@"
        return
    fi
    echo "Downloading the wheels that $wheelCache lacks"
    # Files land in a private directory first and are renamed into the cache, so a build
    # that stops half way never leaves a truncated wheel behind. Group-writable files let
    # every build user of the group share the cache.
    staging=$(umask 002 && mktemp -d "$wheelCache/.download.XXXXXX")
    (umask 002 && "$python" -m pip download --dest "$staging" --find-links "$wheelCache" "$@")
    mv -n "$staging"/*.whl "$wheelCache"/
    rm -rf "$staging"
    "$python" -m pip install --no-compile --target "$target" \
        --no-index --find-links "$wheelCache" "$@"
}
