# The virtual hosts of tests/nix/caddy-config.nix laid out as NixOS lays out services.caddy.virtualHosts
# before its `caddy fmt` (mkVHostConf in nixos/modules/services/web-servers/caddy: the address, the empty
# lines of its unset bind and tls settings, the log block with logFormat, a blank line, extraConfig, with the
# indentation of its template). Formatted, this text must be what nix/sites/caddyfile.nix renders.
{ logDir, staticRoot }@args:
let
  virtualHosts = import ./caddy-config.nix (args // { virtualHostsOnly = true; });
  unformatted =
    address: vhost:
    "${address}  {\n  \n  \n  log {\n  ${vhost.logFormat}\n}\n\n\n  ${vhost.extraConfig}\n}\n";
in
builtins.concatStringsSep "\n" (
  map (address: unformatted address virtualHosts.${address}) (builtins.attrNames virtualHosts)
)
