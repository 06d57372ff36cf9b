# Shell functions shared by the lab builders (sourced, not run).
# They read $python, $pythonVersion and $wheelCache from the derivation, and $hostRoot and
# $enterHostRoot when the hosts' Python is not this machine's.

# host_run COMMAND [ARG...]: runs COMMAND as on the hosts: in their root file system when the builds are
# for hosts whose Python differs from this machine's, else here. A host building its own system has no
# such root but is the hosts' system itself.
host_run() {
    if [ -n "${hostRoot:-}" ] && [ -d "$hostRoot/usr" ]; then
        unshare --user --map-root-user --mount /bin/sh -eu "$enterHostRoot" "$@"
    else
        "$@"
    fi
}

# The wheel cache as host_run's commands see it.
host_wheel_cache() {
    if [ -n "${hostRoot:-}" ] && [ -d "$hostRoot/usr" ]; then
        echo /mnt
    else
        echo "$wheelCache"
    fi
}

# What `pip download` on this machine needs to fetch the hosts' wheels: their Python's version, ABI and
# every platform tag it accepts (nothing when they run this machine's Python).
host_wheel_options() {
    if [ -z "${hostRoot:-}" ]; then
        return
    fi
    abi="cp$(echo "$pythonVersion" | tr -d .)"
    platforms=$(host_run "$python" -c 'from pip._vendor.packaging import tags
print(" ".join(dict.fromkeys("--platform " + tag.platform for tag in tags.sys_tags())))')
    echo "--python-version $pythonVersion --implementation cp --abi $abi $platforms"
}

check_python() {
    if ! actual=$(host_run "$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); then
        echo "error: cannot run $python; the lab builds need Debian's python3 package" >&2
        exit 1
    fi
    if [ "$actual" != "$pythonVersion" ]; then
        echo "error: $python is Python $actual, but the lab hosts run Python $pythonVersion" >&2
        exit 1
    fi
}

check_pip() {
    if ! host_run "$python" -m pip --version >/dev/null 2>&1 || ! "$python" -m pip --version >/dev/null 2>&1; then
        echo "error: $python has no pip; install Debian's python3-pip package" >&2
        exit 1
    fi
}

# The store is read-only and resets every modification time, so byte code is checked
# against nothing: the sources it was compiled from can never change.
compile_python() {
    host_run "$python" -m compileall -q -j "$NIX_BUILD_CORES" --invalidation-mode unchecked-hash "$1"
}

wheel_cache_writable() {
    [ -n "$wheelCache" ] && mkdir -p "$wheelCache" 2>/dev/null && [ -w "$wheelCache" ]
}

# pip_install TARGET REQUIREMENTS [OPTION...]
# Installs the wheels of REQUIREMENTS into TARGET with the hosts' Python. The wheel cache is tried first
# without the network (a lab host that builds its own system reads it, read-only, and has no network);
# whatever it lacks is downloaded into it by this machine's pip, for the hosts' Python, and the install
# runs again from it. With exact pins the result is the same whichever way the wheels come.
pip_install() {
    target=$1
    requirements=$2
    shift 2
    set -- --no-cache-dir --disable-pip-version-check --no-input --progress-bar off \
        --only-binary=:all: -r "$requirements" "$@"
    if [ -n "$wheelCache" ] && [ -d "$wheelCache" ] && host_run "$python" -m pip install --no-compile \
        --target "$target" --no-index --find-links "$(host_wheel_cache)" "$@" \
        >"$NIX_BUILD_TOP/pip-offline.log" 2>&1; then
        return
    fi
    rm -rf "$target"
    # Files land in a private directory first and are renamed into the cache, so a build that stops half
    # way never leaves a truncated wheel behind. Group-writable files let every build user of the group
    # share the cache.
    if wheel_cache_writable; then
        echo "Downloading the wheels that $wheelCache lacks"
        wheels=$(umask 002 && mktemp -d "$wheelCache/.download.XXXXXX")
    else
        echo "warning: the wheel cache $wheelCache is missing, not writable or lacks wheels; downloading every wheel" >&2
        wheels="$NIX_BUILD_TOP/wheels"
        mkdir -p "$wheels"
    fi
    # shellcheck disable=SC2046 # one word an option or its value: versions and platform tags
    if ! (umask 002 && "$python" -m pip download --dest "$wheels" --find-links "${wheelCache:-$wheels}" \
        $(host_wheel_options) "$@") \
        >"$NIX_BUILD_TOP/pip-download.log" 2>&1; then
        cat "$NIX_BUILD_TOP/pip-download.log" >&2
        wanted=$(sed -n 's/.*No matching distribution found for \([^ ]*\).*/\1/p' "$NIX_BUILD_TOP/pip-download.log")
        echo "error: no wheel of ${wanted:-a pinned package} for the hosts' Python $pythonVersion (pip's message is above); the lab installs wheels only, never source distributions: pin a version that has a wheel for Python $pythonVersion on Linux" >&2
        exit 1
    fi
    cat "$NIX_BUILD_TOP/pip-download.log"
    from=$wheels
    if [ "$wheels" != "$NIX_BUILD_TOP/wheels" ]; then
        if ls "$wheels"/*.whl >/dev/null 2>&1; then
            mv -n "$wheels"/*.whl "$wheelCache"/
        fi
        rm -rf "$wheels"
        from=$(host_wheel_cache)
    fi
    host_run "$python" -m pip install --no-compile --target "$target" --no-index --find-links "$from" "$@"
}
