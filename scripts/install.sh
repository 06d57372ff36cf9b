#!/usr/bin/env bash
# Installs what djdeploy and its lab need on Debian 12 or 13 (or Ubuntu), as root:
#   1. system packages (Nix, systemd-nspawn, debootstrap, ...),
#   2. what Nix needs to build as root: its build group and users, and its settings,
#   3. djdeploy with its test tools in a virtual environment (.venv), with `djdeploy` and `inv` on PATH.
# Safe to run again: each step does only what is missing.
#   scripts/install.sh            all three steps
#   scripts/install.sh --system   steps 1 and 2 only
set -euo pipefail
cd "$(dirname "$0")/.."

system_only=false
case "${1:-}" in
    "") ;;
    --system) system_only=true ;;
    *)
        echo "usage: scripts/install.sh [--system]" >&2
        exit 2
        ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/install.sh installs system packages: run it as root (sudo scripts/install.sh)." >&2
    exit 1
fi

packages=(
    nix-bin            # builds the site and system locally, nix copy to the hosts
    systemd-container  # systemd-nspawn boots the lab hosts
    debootstrap        # builds the lab's Debian image
    openssh-client     # ssh and ssh-keygen, used by Nix and the lab
    iproute2           # network namespaces and veth pairs for the lab hosts
    util-linux         # mount, setpriv
    passwd             # groupadd and useradd for Nix's build users
    curl
    ca-certificates
    git
    python3
    python3-pip        # pip for the lab's site builds (the deployer's python3, the one the lab hosts run)
    python3-venv       # djdeploy's own virtual environment
    shellcheck         # `inv test` checks the shell scripts djdeploy runs on hosts
)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Nix run by root builds as the members of its build group. Debian's nix-bin creates neither the group nor
# the users (its Recommends nix-setup-systemd does): make them as that package does, whether or not it is
# installed.
nix_build_group=nixbld
nix_build_users=10
groupadd --force --system "$nix_build_group"
for number in $(seq 1 "$nix_build_users"); do
    if ! id "$nix_build_group$number" >/dev/null 2>&1; then
        useradd --system --comment "Nix build user $number" --home-dir /var/empty \
            --gid "$nix_build_group" --groups "$nix_build_group" --no-user-group \
            --shell /usr/sbin/nologin "$nix_build_group$number"
    fi
done

# Settings the builds need, each written only where nix.conf does not set it already: Debian's sandbox does
# not work (nix-setup-systemd turns it off too), and the lab's builders use the machine's own tools.
nix_conf=/etc/nix/nix.conf
install -d -m 755 /etc/nix
touch "$nix_conf"
set_nix_default() {
    grep -Eq "^[[:space:]]*$1[[:space:]]*=" "$nix_conf" || printf '%s = %s\n' "$1" "$2" >>"$nix_conf"
}
set_nix_default build-users-group "$nix_build_group"
set_nix_default sandbox false
install -d -m 755 /nix/var/nix/profiles /nix/var/nix/gcroots

# Wheels the lab's site builds share, outside the store; Nix's build users write to it.
install -d -o root -g "$nix_build_group" -m 2775 /var/cache/djdeploy/wheels

if ! nix-store --version >/dev/null 2>&1; then
    echo "Nix did not start: 'nix-store --version' failed after the install; see its error above." >&2
    exit 1
fi
if "$system_only"; then
    echo "The system part of djdeploy's set-up is done."
    exit 0
fi

# djdeploy runs on the system's Python 3.11 or newer, in a virtual environment of its own: Debian's python3
# refuses `pip install` outside one (PEP 668).
if ! /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "djdeploy needs Python 3.11 or newer; /usr/bin/python3 is $(/usr/bin/python3 -V 2>&1)." \
        "Debian 12, Debian 13 and Ubuntu 24.04 have one." >&2
    exit 1
fi
[ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
for command in djdeploy inv; do
    ln -sfn "$PWD/.venv/bin/$command" "/usr/local/bin/$command"
done
echo "djdeploy is installed in $PWD/.venv; 'djdeploy --list' (or 'inv --list' here) shows its tasks."
