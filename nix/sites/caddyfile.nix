# Caddyfile text of virtual hosts given as NixOS declares them (`services.caddy.virtualHosts`: address ->
# { logFormat; extraConfig; }), as NixOS writes them: mkVHostConf of nixos/modules/services/web-servers/caddy
# (the address, a `log` block holding logFormat, then extraConfig), one block per host sorted by address,
# once `caddy fmt` has formatted the file (as NixOS does): tab indentation, a blank line after the log block.
# The lab writes its Caddyfile with this, so that it serves the text a NixOS host serves. Pure builtins.
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    isString
    map
    split
    ;

  # Non-empty lines of a text, each with one more tab in front.
  indented = text: map (line: "\t${line}") (filter (line: isString line && line != "") (split "\n" text));

  vhostText =
    address: vhost:
    let
      logLines =
        if (vhost.logFormat or null) == null then [ ] else [ "log {" ] ++ indented vhost.logFormat ++ [ "}" ];
      extraLines = indented (vhost.extraConfig or "");
      separator = if logLines != [ ] && extraLines != [ ] then [ "" ] else [ ];
    in
    concatStringsSep "\n" (
      [ "${address} {" ] ++ map (line: if line == "" then "" else "\t${line}") logLines ++ separator ++ extraLines ++ [ "}" ]
    )
    + "\n";
in
{
  render = virtualHosts: concatStringsSep "\n" (map (address: vhostText address virtualHosts.${address}) (attrNames virtualHosts));
}
