#!/bin/sh
# The lab's stage 2, a lab toplevel's `init`. switch-to-configuration boot installs it as a systemd generator,
# which systemd runs at boot before it loads any unit: it makes the system of the boot default (the entry
# /boot/loader/loader.conf names) the booted and the current system, as NixOS's stage-2-init.sh does before
# it starts systemd (nixpkgs nixos/modules/system/boot/stage-2-init.sh). systemd then reads that system's
# units and starts what its targets want. Accounts, databases and directories persist on the lab's disk.
set -u
PATH=/usr/bin:/bin
# systemd runs generators again at each daemon-reload: only a boot, whose /run is empty, has no current system.
[ -L /run/current-system ] && exit 0
loader=/boot/loader
entry=$(sed -n 's/^default //p' "$loader/loader.conf" 2>/dev/null)
[ -n "$entry" ] || exit 0
init=$(sed -n 's/^options .*init=\([^ ]*\).*/\1/p' "$loader/entries/$entry" 2>/dev/null)
system=$(dirname "$init")
if [ -z "$init" ] || [ ! -e "$system/nixos-version" ]; then
    echo "lab-stage-2: the boot entry $entry names no system" >&2
    exit 0
fi
ln -sfn "$system" /run/booted-system
ln -sfn "$system" /run/current-system
