# Runs its arguments in the hosts' root file system $hostRoot (the lab image), as root of a user
# namespace of its own that the caller made (unshare), with this machine's store, build directory,
# devices and processes in it and the wheel cache at /mnt: a build for hosts whose Python is not this
# machine's runs theirs, without root here.
case $NIX_BUILD_TOP in
/tmp/*) ;;
*)
    echo "error: the build directory $NIX_BUILD_TOP is outside /tmp, so it cannot be seen from $hostRoot; run the build without TMPDIR set" >&2
    exit 1
    ;;
esac
mount --rbind /nix "$hostRoot/nix"
mount --rbind /tmp "$hostRoot/tmp"
mount --rbind /dev "$hostRoot/dev"
mount --rbind /proc "$hostRoot/proc"
if [ -n "$wheelCache" ] && [ -d "$wheelCache" ]; then
    mount --rbind "$wheelCache" "$hostRoot/mnt"
fi
exec /usr/sbin/chroot "$hostRoot" "$@"
