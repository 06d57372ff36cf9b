# Renders NixOS-style unit attribute sets (systemd.services.<name> / systemd.sockets.<name>) as unit files,
# with builtins only, so the lab turns the very definitions the NixOS module uses into real units.
let
  concatMap = f: list: builtins.concatStringsSep "" (map f list);
  render = value:
    if builtins.isBool value then (if value then "true" else "false")
    else toString value;
  # Lists become one line per item (ExecStart=, Environment=, ListenStream= ...), as NixOS renders them.
  lines = attrs: concatMap
    (key:
      let value = attrs.${key}; in
      if value == null then ""
      else if builtins.isList value then concatMap (item: "${key}=${render item}\n") value
      else "${key}=${render value}\n")
    (builtins.attrNames attrs);
  joined = list: builtins.concatStringsSep " " list;
  dependencyKeys = {
    after = "After"; before = "Before"; requires = "Requires"; wants = "Wants";
    partOf = "PartOf"; bindsTo = "BindsTo"; requisite = "Requisite"; conflicts = "Conflicts";
  };
  unitSection = unit:
    let
      present = builtins.filter (key: (unit.${key} or [ ]) != [ ]) (builtins.attrNames dependencyKeys);
      dependencies = builtins.listToAttrs (map (key: { name = dependencyKeys.${key}; value = joined unit.${key}; }) present);
      triggers =
        (if (unit.restartTriggers or [ ]) != [ ] then { X-Restart-Triggers = builtins.hashString "sha256" (builtins.toJSON unit.restartTriggers); } else { })
        // (if (unit.reloadTriggers or [ ]) != [ ] then { X-Reload-Triggers = builtins.hashString "sha256" (builtins.toJSON unit.reloadTriggers); } else { });
    in
    "[Unit]\n" + lines ({ Description = unit.description or ""; } // dependencies // (unit.unitConfig or { }) // triggers);
  environmentLines = environment:
    map (name: "\"${name}=${toString environment.${name}}\"") (builtins.attrNames environment);
in
{
  service = unit:
    unitSection unit
    + "\n[Service]\n"
    + lines ({ Environment = environmentLines (unit.environment or { }); } // (unit.serviceConfig or { }));

  socket = unit:
    unitSection unit
    + "\n[Socket]\n"
    + lines ({ ListenStream = unit.listenStreams or [ ]; } // (unit.socketConfig or { }));

  timer = unit:
    unitSection unit
    + "\n[Timer]\n"
    + lines (unit.timerConfig or { });

  target = unit: unitSection unit;

  # target name -> unit names, from each unit's wantedBy and requiredBy.
  wants = units:
    let
      pairs = builtins.concatLists (map
        (name: map (target: { inherit target name; }) ((units.${name}.wantedBy or [ ]) ++ (units.${name}.requiredBy or [ ])))
        (builtins.attrNames units));
      targets = builtins.attrNames (builtins.listToAttrs (map (pair: { name = pair.target; value = null; }) pairs));
    in
    builtins.listToAttrs (map
      (target: { name = target; value = map (pair: pair.name) (builtins.filter (pair: pair.target == target) pairs); })
      targets);
}
