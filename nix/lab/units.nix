# Renders NixOS-style unit attribute sets (systemd.services.<name> / systemd.sockets.<name>) as unit files,
# with builtins only, so the lab turns the very definitions the NixOS module uses into real units. The text is
# what NixOS writes (nixpkgs nixos/lib/systemd-lib.nix: unitConfig, serviceToUnit, socketToUnit,
# commonUnitText), so the lab's switch-to-configuration reads the same keys NixOS's does.
let
  concatMap = f: list: builtins.concatStringsSep "" (map f list);
  # systemd-lib.nix toOption.
  render = value:
    if builtins.isBool value then (if value then "true" else "false")
    else toString value;
  # systemd-lib.nix attrsToSection: lists become one line per item (ExecStart=, ListenStream= ...).
  lines = attrs: concatMap
    (key:
      let value = attrs.${key}; in
      if value == null then ""
      else if builtins.isList value then concatMap (item: "${key}=${render item}\n") value
      else "${key}=${render value}\n")
    (builtins.attrNames attrs);
  joined = list: builtins.concatStringsSep " " list;
  optional = condition: attrs: if condition then attrs else { };
  dependencyKeys = {
    after = "After"; before = "Before"; requires = "Requires"; wants = "Wants"; upholds = "Upholds";
    partOf = "PartOf"; bindsTo = "BindsTo"; requisite = "Requisite"; conflicts = "Conflicts";
  };
  # NixOS writes each trigger list to a store file and names that file: a change of the list changes the
  # value. A hash of the list changes exactly when that file's path would.
  triggerValue = triggers: builtins.hashString "sha256" (builtins.toJSON triggers);
  # systemd-lib.nix unitConfig: the [Unit] keys NixOS derives from a unit's options, then its unitConfig
  # (X-OnlyManualStart, RefuseManualStop and the like are set there, as on NixOS).
  unitSection = unit:
    let
      present = builtins.filter (key: (unit.${key} or [ ]) != [ ]) (builtins.attrNames dependencyKeys);
      dependencies = builtins.listToAttrs (map (key: { name = dependencyKeys.${key}; value = joined unit.${key}; }) present);
      derived =
        dependencies
        // optional ((unit.restartTriggers or [ ]) != [ ]) { X-Restart-Triggers = triggerValue unit.restartTriggers; }
        // optional ((unit.reloadTriggers or [ ]) != [ ]) { X-Reload-Triggers = triggerValue unit.reloadTriggers; }
        // optional ((unit.description or "") != "") { Description = unit.description; };
    in
    "[Unit]\n" + lines (derived // (unit.unitConfig or { }));
  # systemd-lib.nix commonUnitText: the [Install] section (switch-to-configuration ignores it).
  installSection = unit:
    if (unit.wantedBy or [ ]) == [ ] then "" else "\n[Install]\nWantedBy=${joined unit.wantedBy}\n";
  environmentLines = environment:
    concatMap (name: "Environment=${builtins.toJSON "${name}=${toString environment.${name}}"}\n")
      (builtins.attrNames environment);
  # systemd-lib.nix serviceToUnit: the switch flags are written only when they differ from the options'
  # defaults (nixos/lib/systemd-unit-options.nix: restartIfChanged true, reloadIfChanged false,
  # stopIfChanged true, notSocketActivated false); reloadIfChanged wins over restartIfChanged.
  switchFlags = unit:
    (if unit.reloadIfChanged or false then "X-ReloadIfChanged=true\n"
     else if !(unit.restartIfChanged or true) then "X-RestartIfChanged=false\n"
     else "")
    + (if !(unit.stopIfChanged or true) then "X-StopIfChanged=false\n" else "")
    + (if unit.notSocketActivated or false then "X-NotSocketActivated=true\n" else "");
  # What systemd-lib.nix generateUnits links for each unit: <target>.wants/, .requires/ and .upholds/.
  linkedBy = option: units:
    let
      pairs = builtins.concatLists (map
        (name: map (target: { inherit target name; }) (units.${name}.${option} or [ ]))
        (builtins.attrNames units));
      targets = builtins.attrNames (builtins.listToAttrs (map (pair: { name = pair.target; value = null; }) pairs));
    in
    builtins.listToAttrs (map
      (target: { name = target; value = map (pair: pair.name) (builtins.filter (pair: pair.target == target) pairs); })
      targets);
in
{
  service = unit:
    unitSection unit
    + "\n[Service]\n"
    + environmentLines (unit.environment or { })
    + switchFlags unit
    + lines (unit.serviceConfig or { })
    + installSection unit;

  socket = unit:
    unitSection unit
    + "\n[Socket]\n"
    + lines (unit.socketConfig or { })
    + concatMap (stream: "ListenStream=${stream}\n") (unit.listenStreams or [ ])
    + installSection unit;

  timer = unit:
    unitSection unit
    + "\n[Timer]\n"
    + lines (unit.timerConfig or { })
    + installSection unit;

  target = unit: unitSection unit;

  # Directory suffix ("wants", "requires", "upholds") -> target name -> unit names, from each unit's wantedBy,
  # requiredBy and upheldBy.
  links = units: {
    wants = linkedBy "wantedBy" units;
    requires = linkedBy "requiredBy" units;
    upholds = linkedBy "upheldBy" units;
  };
}
