#!/bin/sh
# The activation supervisor: djdeploy starts it on the host with systemd-run, as
#   sh -c "$(cat supervisor.sh)" djdeploy-activate DIR PROFILE NEW TARGET CONFIRM_SECONDS LOG LOCK SWITCH_LOCK
# DIR: this activation's directory (it exists, named by the activation's id, which is also the token of the
# deploy lock it runs under); PROFILE: the system profile; NEW: the new system; TARGET: the generation to
# switch the profile to, or "new" for a new generation of NEW; CONFIRM_SECONDS: how long to wait for the
# deployer's confirmation; LOG: the deploy log; LOCK: the deploy lock's directory; SWITCH_LOCK: the file
# every supervisor of the host takes (flock) while it changes what the host runs.
#
# The supervisor sets the profile itself, so a connection lost before it started leaves the profile alone.
# It writes DIR/previous (the generation the host ran, where a failure returns to, or "none") and
# DIR/generation. States (DIR/state): activating -> switched -> confirmed; or rolling-back -> rolled-back
# (reason in DIR/reason), rollback-failed (the host needs a person), failed (no previous generation to
# return to), not-switched (the profile could not be set: nothing changed) or superseded (another deploy
# switched the host since: its generation is left alone).
# The new system is tried with `switch-to-configuration test` and made the boot default only once
# confirmed, so a host that reboots before the confirmation comes back on the previous generation.
# Once switched, DIR/deadline holds the second it rolls back at without a confirmation. A rejection
# (DIR/rejected) wins over a confirmation that came with it.
# The supervisor owns the end: on its final state it appends the deploy's line to LOG (DIR/record.json, the
# record's fixed fields written by the deployer, completed with the outcome) and releases LOCK if it still
# holds this activation's token, then writes the state, so a deployer that is gone leaves nothing behind.
# When the switch fails, DIR/failed-units names each unit it reports as failed with that unit's invocation
# id (read before the rollback starts the unit again; the deployer writes it when the health check fails),
# and DIR/started holds the second the activation began: the deployer reads those units' journal of this
# activation.
# A deploy that migrates leaves DIR/schema and schema-rollback.sh: a rollback first runs it, to put the sites'
# databases back with the new release's code, and its sentences join the reason.
# The script travels on systemd-run's command line, where systemd would expand a dollar sign followed by a
# brace: it has none.
set -u
dir=$1 profile=$2 new=$3 target=$4 confirm_seconds=$5 deploy_log=$6 lock_dir=$7 switch_lock=$8
token=$(basename "$dir")
# Seconds a supervisor waits for another one's switch or rollback to end.
switch_lock_seconds=900
state() { printf '%s\n' "$1" > "$dir/state.new" && mv "$dir/state.new" "$dir/state"; }
# Text as the inside of a JSON string: one line, without control characters, quotes and backslashes escaped.
json_text() { tr '\n\r\t' '   ' | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/ *$//'; }
# The deploy's line in the deploy log: the deployer's fixed fields, then the outcome (a RecordOutcome).
record() {
    [ -s "$dir/record.json" ] || return 0
    mkdir -p "$(dirname "$deploy_log")"
    printf '%s, "finished": "%s", "generation": %s, "outcome": "%s", "reason": "%s"}\n' \
        "$(sed 's/}[[:space:]]*$//' "$dir/record.json")" "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" \
        "$2" "$1" "$(json_text < "$dir/reason" 2>/dev/null)" >> "$deploy_log"
}
# finish STATE OUTCOME GENERATION: record, release the deploy lock if it is still this activation's, end.
finish() {
    touch "$dir/reason"
    record "$2" "$3"
    if grep -qF "\"$token\"" "$lock_dir/owner.json" 2>/dev/null; then rm -rf "$lock_dir"; fi
    state "$1"
    [ "$1" = confirmed ] && exit 0
    exit 1
}
# The units the switch reports as failed, in the words of NixOS ("warning: the following units failed: a, b")
# and of systemctl ("Job for a failed because ...").
failed_units() {
    # shellcheck disable=SC2020 # a comma and a space both end a unit's name
    sed -n -e 's/^warning: the following units failed: //p' -e 's/^Job for \([^ ]*\) failed.*/\1/p' \
        "$dir/switch.log" | tr ', ' '\n\n' | sed '/^$/d' | sort -u
}
record_failed_units() {
    for unit in $(failed_units); do
        printf '%s %s\n' "$unit" "$(systemctl show --property=InvocationID --value "$unit" 9>&- 8>&- 7>&-)"
    done > "$dir/failed-units"
}
number() { expr "$1" : '.*system-\([0-9][0-9]*\)-link$'; }
# The generation the profile points at, or null (JSON's) when it is not a generation link.
profile_generation() {
    n=$(number "$(readlink "$profile")") || n=null
    echo "$n"
}
# The host-wide switch lock: one supervisor at a time changes what the host runs.
take_switch_lock() { flock -w "$switch_lock_seconds" 7; }
roll_back() {
    printf '%s\n' "$1" > "$dir/reason"
    if [ "$previous" = none ]; then
        finish failed failed "$generation"
    fi
    state rolling-back
    if ! take_switch_lock; then
        printf '%s; the rollback did not start: another activation held %s for %s s\n' "$1" "$switch_lock" \
            "$switch_lock_seconds" > "$dir/reason"
        finish rollback-failed rollback-failed "$generation"
    fi
    # A supervisor never switches the host away from a generation it did not make.
    current=$(profile_generation)
    if [ "$current" != "$generation" ]; then
        printf '%s; generation %s was left alone: another deploy made it since\n' "$1" "$current" \
            > "$dir/reason"
        finish superseded superseded "$current"
    fi
    # The schema goes back first, with the new release's code (DIR/schema, the facts the deployer wrote
    # before the switch); what was done joins the reason.
    if [ -s "$dir/schema" ]; then
        sh "$dir/schema-rollback.sh" "$dir" schema > /dev/null 2>&1 9>&- 8>&- 7>&-
        printf '%s; %s\n' "$1" "$(tr '\n' ' ' < "$dir/schema.said" | sed 's/[. ]*$//')" > "$dir/reason"
    fi
    if ! nix-env -p "$profile" --switch-generation "$previous" > "$dir/rollback.log" 2>&1 9>&- 8>&- 7>&-; then
        finish rollback-failed rollback-failed "$generation"
    fi
    "$profile/bin/switch-to-configuration" switch >> "$dir/rollback.log" 2>&1 9>&- 8>&- 7>&-
    code=$?
    echo "$code" > "$dir/rollback.rc"
    if [ "$code" -ne 0 ]; then
        finish rollback-failed rollback-failed "$generation"
    fi
    finish rolled-back "rolled back" "$previous"
}
# Waiters sleep on these locks instead of polling: ./switching is held until the switch is over, ./deciding
# until a final state. Commands started from here must not inherit them (9>&- 8>&- 7>&-).
exec 9> "$dir/switching" 8> "$dir/deciding"
flock 9
flock 8
state activating
date +%s > "$dir/started"
mkdir -p "$(dirname "$switch_lock")"
exec 7> "$switch_lock"
generation=null previous=none
if ! take_switch_lock; then
    printf 'another activation held %s for %s s\n' "$switch_lock" "$switch_lock_seconds" > "$dir/reason"
    finish not-switched "not switched" "$(profile_generation)"
fi
# Where a failure returns to: the newest generation of the system the host runs now.
running=$(readlink -f /run/current-system)
for link in "$profile"-*-link; do
    [ "$(readlink -f "$link")" = "$running" ] || continue
    n=$(number "$link")
    if [ "$previous" = none ] || [ "$n" -gt "$previous" ]; then previous=$n; fi
done
echo "$previous" > "$dir/previous"
# A return to an older generation first puts the schema back with the code that runs now: DIR/schema-before
# holds the facts of the deploy that made it. What was done is in DIR/schema.said.
if [ "$target" != new ] && [ -s "$dir/schema-before" ]; then
    sh "$dir/schema-rollback.sh" "$dir" schema-before > /dev/null 2>&1 9>&- 8>&- 7>&-
fi
if [ "$target" = new ]; then
    nix-env -p "$profile" --set "$new" > "$dir/switch.log" 2>&1 9>&- 8>&- 7>&-
else
    nix-env -p "$profile" --switch-generation "$target" > "$dir/switch.log" 2>&1 9>&- 8>&- 7>&-
fi
code=$?
generation=$(profile_generation)
echo "$generation" > "$dir/generation"
if [ "$code" -ne 0 ]; then
    printf 'setting the system profile failed (nix-env exited with %s)\n' "$code" > "$dir/reason"
    finish not-switched "not switched" "$generation"
fi
"$new/bin/switch-to-configuration" test >> "$dir/switch.log" 2>&1 9>&- 8>&- 7>&-
code=$?
if [ "$code" -ne 0 ]; then
    record_failed_units
    roll_back "activation failed: switch-to-configuration exited with $code"
fi
flock -u 7
deadline=$(( $(date +%s) + confirm_seconds ))
echo "$deadline" > "$dir/deadline"
state switched
flock -u 9
rounds=0
# Tests are shell builtins; the clock is read once a second, so waiting costs almost nothing.
while [ ! -e "$dir/confirmed" ] && [ ! -e "$dir/rejected" ]; do
    rounds=$((rounds + 1))
    if [ $((rounds % 20)) -eq 0 ] && [ "$(date +%s)" -ge "$deadline" ]; then
        break
    fi
    sleep 0.05
done
if [ -e "$dir/rejected" ]; then
    roll_back "$(cat "$dir/rejected")"
fi
if [ -e "$dir/confirmed" ]; then
    take_switch_lock
    "$new/bin/switch-to-configuration" boot >> "$dir/switch.log" 2>&1 9>&- 8>&- 7>&-
    code=$?
    echo "$code" > "$dir/boot.rc"
    if [ "$code" -ne 0 ]; then
        printf 'switch-to-configuration boot exited with %s\n' "$code" > "$dir/reason"
        finish confirmed "running, not the boot default" "$generation"
    fi
    finish confirmed success "$generation"
fi
roll_back "no confirmation from the deployer within $confirm_seconds s (the host may have been cut off)"
