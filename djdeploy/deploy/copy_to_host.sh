#!/bin/sh
# Run by djdeploy on a build host (sh -c "$script" copy-to-host ...): copies a store path's closure to a
# host with `nix copy`, logging in with the deployer's forwarded SSH agent and accepting only the host keys
# given (the deployer's known_hosts lines for that host).
# Arguments: DESTINATION_STORE_URI PORT STORE_PATH KNOWN_HOSTS_LINE...
set -eu
destination=$1
port=$2
path=$3
shift 3
known=$(mktemp)
trap 'rm -f "$known"' EXIT
printf '%s\n' "$@" >"$known"
# Nix 2.8 splits NIX_SSHOPTS at spaces: no option holds one (mktemp's names do not).
NIX_SSHOPTS="-o StrictHostKeyChecking=yes -o BatchMode=yes -p $port -o UserKnownHostsFile=$known"
export NIX_SSHOPTS
nix --extra-experimental-features 'nix-command flakes' copy -v --to "$destination" "$path"
