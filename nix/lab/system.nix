# A NixOS-shaped system for the lab's Debian hosts, built without nixpkgs from the same site definitions
# (nix/sites) that the NixOS module uses. Its bin/switch-to-configuration activates it as NixOS's does.
{
  # django.sites as a NixOS configuration would set it: instance name -> options.
  sites ? { },
  hostName ? "lab",
  packages ? import ./packages.nix { },
  # services -> services: a change to the units the site definitions make, for tests of what the lab's
  # switch-to-configuration does with them.
  adjustServices ? (services: services),
}:
let
  units = import ./units.nix;
  siteDefaults = import ../sites/defaults.nix;
  withDefaults = builtins.mapAttrs (name: site: siteDefaults name // site) sites;
  failedAssertions = builtins.filter (check: !check.assertion) (import ../sites/assertions.nix withDefaults);
  checkedSites =
    if failedAssertions == [ ] then
      withDefaults
    else
      throw ("Failed assertions:\n" + builtins.concatStringsSep "\n" (map (check: "- ${check.message}") failedAssertions));

  definitions = builtins.mapAttrs (
    name: site:
    import ../sites/definitions.nix {
      inherit name site;
      python = "${site.package}/bin/python";
      # The scripts then find coreutils, runuser and sudo whatever PATH their caller has.
      path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
      staticServeDir = "/run/current-system/etc/djdeploy/static/${name}";
      # The definitions' scripts are POSIX shell bodies; the lab hosts run them with Debian's /bin/sh.
      writeScript = scriptName: text: packages.writeScript scriptName ("#!/bin/sh\n" + text);
    }
  ) checkedSites;
  siteList = map (name: definitions.${name} // { inherit name; }) (builtins.attrNames definitions);
  concatMap = f: list: builtins.concatStringsSep "" (map f list);

  caddyfile = ''
    {
      # Lab hosts cannot reach an ACME server and have no system trust store to install into.
      skip_install_trust
      log {
        output file /var/log/caddy/caddy.log
        level ERROR
      }
    }
  ''
  # Every site's virtual hosts in one set, written as NixOS writes services.caddy.virtualHosts.
  + (import ../sites/caddyfile.nix).render (builtins.foldl' (all: site: all // site.virtualHosts) { } siteList);

  caddyCommand = verb: "${packages.caddy}/bin/caddy ${verb} --config /run/current-system/etc/caddy/Caddyfile --adapter caddyfile";
  caddyService = {
    description = "Caddy web server";
    wantedBy = [ "multi-user.target" ];
    after = [ "network.target" ];
    # A changed Caddyfile reloads Caddy; anything else in this unit restarts it.
    reloadTriggers = [ caddyfile ];
    environment = {
      HOME = "/var/lib/caddy";
      XDG_DATA_HOME = "/var/lib/caddy/.local/share";
      XDG_CONFIG_HOME = "/var/lib/caddy/.config";
    };
    serviceConfig = {
      User = "caddy";
      Group = "caddy";
      SupplementaryGroups = builtins.concatLists (map (site: site.caddySupplementaryGroups) siteList);
      ExecStart = caddyCommand "run";
      ExecReload = caddyCommand "reload" + " --force";
      AmbientCapabilities = "CAP_NET_BIND_SERVICE";
      StateDirectory = "caddy";
      LogsDirectory = "caddy";
      Restart = "on-failure";
    };
  };

  services = adjustServices ({ caddy = caddyService; } // builtins.foldl' (all: site: all // site.services) { } siteList);
  sockets = builtins.foldl' (all: site: all // (site.sockets or { })) { } siteList;
  timers = builtins.foldl' (all: site: all // (site.timers or { })) { } siteList;
  unitFilesOf = suffix: render: attrs:
    builtins.listToAttrs (map (name: { name = "${name}.${suffix}"; value = render attrs.${name}; }) (builtins.attrNames attrs));
  unitFiles = unitFilesOf "service" units.service services // unitFilesOf "socket" units.socket sockets // unitFilesOf "timer" units.timer timers;
  # Suffix ("wants", "requires", "upholds") -> target -> unit file names, as NixOS links them.
  links =
    let
      suffixed = suffix: builtins.mapAttrs (_: builtins.mapAttrs (_: map (name: "${name}.${suffix}")));
      perKind = [
        (suffixed "service" (units.links services))
        (suffixed "socket" (units.links sockets))
        (suffixed "timer" (units.links timers))
      ];
      merge = kind:
        let targets = builtins.attrNames (builtins.foldl' (all: attrs: all // attrs.${kind}) { } perKind); in
        builtins.listToAttrs (map (target: {
          name = target;
          value = builtins.concatLists (map (attrs: attrs.${kind}.${target} or [ ]) perKind);
        }) targets);
    in
    builtins.listToAttrs (map (kind: { name = kind; value = merge kind; }) [ "wants" "requires" "upholds" ]);

  spec = {
    version = "lab-${hostName}";
    units = unitFiles;
    inherit links caddyfile;
    sites = map (site: site.manifest) siteList;
    static = builtins.mapAttrs (name: site: "${site.staticFilesPackage}") checkedSites;
    tmpfiles = concatMap (line: line + "\n") (builtins.concatLists (map (site: site.tmpfiles) siteList));
    commands = builtins.listToAttrs (map (site: { name = "manage-${site.name}"; value = "${site.manageScript}"; }) siteList);
    system = {
      groups = [ "caddy" ] ++ map (site: site.group) siteList;
      users = [ { name = "caddy"; group = "caddy"; home = "/var/lib/caddy"; } ]
        ++ map (site: { name = site.user; group = site.group; home = site.baseDir; }) siteList;
      databases = builtins.filter (database: database != null) (map (site: site.database) siteList);
    };
  };
in
builtins.derivation {
  name = "lab-system-${hostName}";
  inherit (packages) system;
  builder = "/usr/bin/python3";
  args = [ ./build-toplevel.py ];
  switchScript = ./switch-to-configuration.py;
  stage2Script = ./stage-2.sh;
  spec = builtins.toJSON spec;
  passAsFile = [ "spec" ];
}
