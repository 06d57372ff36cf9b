#!/bin/sh
# The activation supervisor: djdeploy starts it on the host with systemd-run, as
#   sh -c "$(cat supervisor.sh)" djdeploy-activate DIR PROFILE NEW TARGET CONFIRM_SECONDS
# DIR: this activation's directory (it exists); PROFILE: the system profile; NEW: the new system;
# TARGET: the generation to switch the profile to, or "new" for a new generation of NEW;
# CONFIRM_SECONDS: how long to wait for the deployer's confirmation.
#
# The supervisor sets the profile itself, so a connection lost before it started leaves the profile alone.
# It writes DIR/previous (the generation the host ran, where a failure returns to, or "none") and
# DIR/generation. States (DIR/state): activating -> switched -> confirmed; or rolling-back -> rolled-back
# (reason in DIR/reason), rollback-failed (the host needs a person), failed (no previous generation to
# return to) or not-switched (the profile could not be set: nothing changed).
# The new system is tried with `switch-to-configuration test` and made the boot default only once
# confirmed, so a host that reboots before the confirmation comes back on the previous generation.
# When the switch fails, DIR/failed-units names each unit it reports as failed with that unit's invocation
# id (read before the rollback starts the unit again; the deployer writes it when the health check fails),
# and DIR/started holds the second the activation began: the deployer reads those units' journal of this
# activation.
# The script travels on systemd-run's command line, where systemd would expand a dollar sign followed by a
# brace: it has none.
set -u
dir=$1 profile=$2 new=$3 target=$4 confirm_seconds=$5
state() { printf '%s\n' "$1" > "$dir/state.new" && mv "$dir/state.new" "$dir/state"; }
# The units the switch reports as failed, in the words of NixOS ("warning: the following units failed: a, b")
# and of systemctl ("Job for a failed because ...").
failed_units() {
    # shellcheck disable=SC2020 # a comma and a space both end a unit's name
    sed -n -e 's/^warning: the following units failed: //p' -e 's/^Job for \([^ ]*\) failed.*/\1/p' \
        "$dir/switch.log" | tr ', ' '\n\n' | sed '/^$/d' | sort -u
}
record_failed_units() {
    for unit in $(failed_units); do
        printf '%s %s\n' "$unit" "$(systemctl show --property=InvocationID --value "$unit" 9>&- 8>&-)"
    done > "$dir/failed-units"
}
number() { expr "$1" : '.*system-\([0-9][0-9]*\)-link$'; }
roll_back() {
    printf '%s\n' "$1" > "$dir/reason"
    if [ "$previous" = none ]; then
        state failed
        exit 1
    fi
    state rolling-back
    if ! nix-env -p "$profile" --switch-generation "$previous" > "$dir/rollback.log" 2>&1 9>&- 8>&-; then
        state rollback-failed
        exit 1
    fi
    "$profile/bin/switch-to-configuration" switch >> "$dir/rollback.log" 2>&1 9>&- 8>&-
    code=$?
    echo "$code" > "$dir/rollback.rc"
    if [ "$code" -ne 0 ]; then
        state rollback-failed
        exit 1
    fi
    state rolled-back
    exit 1
}
# Waiters sleep on these locks instead of polling: ./switching is held until the switch is over, ./deciding
# until a final state. Commands started from here must not inherit them (9>&- 8>&-).
exec 9> "$dir/switching" 8> "$dir/deciding"
flock 9
flock 8
state activating
date +%s > "$dir/started"
# Where a failure returns to: the newest generation of the system the host runs now.
running=$(readlink -f /run/current-system)
previous=none
for link in "$profile"-*-link; do
    [ "$(readlink -f "$link")" = "$running" ] || continue
    n=$(number "$link")
    if [ "$previous" = none ] || [ "$n" -gt "$previous" ]; then previous=$n; fi
done
echo "$previous" > "$dir/previous"
if [ "$target" = new ]; then
    nix-env -p "$profile" --set "$new" > "$dir/switch.log" 2>&1 9>&- 8>&-
else
    nix-env -p "$profile" --switch-generation "$target" > "$dir/switch.log" 2>&1 9>&- 8>&-
fi
code=$?
number "$(readlink "$profile")" > "$dir/generation"
if [ "$code" -ne 0 ]; then
    printf 'setting the system profile failed (nix-env exited with %s)\n' "$code" > "$dir/reason"
    state not-switched
    exit 1
fi
"$new/bin/switch-to-configuration" test >> "$dir/switch.log" 2>&1 9>&- 8>&-
code=$?
if [ "$code" -ne 0 ]; then
    record_failed_units
    roll_back "activation failed: switch-to-configuration exited with $code"
fi
state switched
flock -u 9
deadline=$(( $(date +%s) + confirm_seconds ))
rounds=0
# Tests are shell builtins; the clock is read once a second, so waiting costs almost nothing.
while [ ! -e "$dir/confirmed" ] && [ ! -e "$dir/rejected" ]; do
    rounds=$((rounds + 1))
    if [ $((rounds % 20)) -eq 0 ] && [ "$(date +%s)" -ge "$deadline" ]; then
        break
    fi
    sleep 0.05
done
if [ -e "$dir/confirmed" ]; then
    "$new/bin/switch-to-configuration" boot >> "$dir/switch.log" 2>&1 9>&- 8>&-
    echo $? > "$dir/boot.rc"
    state confirmed
    exit 0
fi
if [ -e "$dir/rejected" ]; then
    roll_back "$(cat "$dir/rejected")"
fi
roll_back "no confirmation from the deployer within $confirm_seconds s (the host may have been cut off)"
