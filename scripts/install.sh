#!/usr/bin/env bash
# Installs what djdeploy and its lab need on Debian 12 / Ubuntu: system packages, then the Python package.
set -euo pipefail
cd "$(dirname "$0")/.."

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
    curl
    python3
    python3-pip        # pip for the lab's site builds (Debian's python3, which the lab hosts run)
    python3-venv
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

# Wheels the lab's site builds share, outside the store; Nix's build users write to it.
install -d -o root -g nixbld -m 2775 /var/cache/djdeploy/wheels

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "djdeploy is installed: run 'inv --list' to see its tasks."
