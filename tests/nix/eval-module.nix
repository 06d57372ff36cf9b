# Evaluates nix/module.nix with the given `django.sites` (and `extraConfig`, more of a NixOS configuration)
# on top of the stub NixOS options, and returns what the module set, as JSON-friendly data. Needs nixpkgs' lib
# as <nixpkgs/lib>.
{
  sites,
  extraConfig ? { },
}:
let
  lib = import <nixpkgs/lib>;
  pkgs = import ./fake-pkgs.nix;
  inherit (lib.evalModules {
    modules = [
      ../../nix/module.nix
      ./stubs.nix
      {
        # As a NixOS configuration's own file: messages name it.
        _file = "/etc/nixos/configuration.nix";
        _module.args.pkgs = pkgs;
        django.sites = sites;
      }
      extraConfig
    ];
  }) config;
  plain = lib.mapAttrs (_: value: removeAttrs value [ "_module" ]);
in
{
  failedAssertions = map (check: check.message) (lib.filter (check: !check.assertion) config.assertions);
  inherit (config) warnings;
  services = plain config.systemd.services;
  sockets = plain config.systemd.sockets;
  timers = plain config.systemd.timers;
  tmpfiles = config.systemd.tmpfiles.rules;
  caddy = {
    inherit (config.services.caddy) enable extraConfig;
    virtualHosts = plain config.services.caddy.virtualHosts;
    # The virtual hosts as NixOS writes them to the Caddyfile.
    config = (import ../../nix/sites/caddyfile.nix).render config.services.caddy.virtualHosts;
  };
  postgresql = {
    inherit (config.services.postgresql) enable ensureDatabases;
    ensureUsers = map (user: removeAttrs user [ "_module" ]) config.services.postgresql.ensureUsers;
  };
  users = plain config.users.users;
  groups = lib.attrNames config.users.groups;
  logrotate = config.services.logrotate.settings;
  systemPackages = map (drv: drv.name) config.environment.systemPackages;
  sitesManifest = builtins.fromJSON config.environment.etc."djdeploy/sites.json".text;
  etcSources = lib.mapAttrs (_: entry: if entry.source == null then null else "${entry.source}") config.environment.etc;
  sites = lib.mapAttrs (_: site: {
    inherit (site)
      settingsModule
      wsgiModule
      user
      group
      baseDir
      port
      nbWorkers
      ;
    extraPackages = map (drv: drv.name) site.extraPackages;
    manageEntries = map (entry: {
      inherit (entry) name;
      text = entry.path.text;
    }) site.manageScript.entries;
  }) config.django.sites;
}
