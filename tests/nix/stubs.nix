# The NixOS options the module sets, declared with the types NixOS gives them (a subset), so the module can be
# evaluated with nixpkgs' lib alone. A unit attribute the module sets but NixOS does not know fails here too.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;

  unitOptions = {
    description = mkOption {
      type = types.str;
      default = "";
    };
    wantedBy = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    requiredBy = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    before = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    after = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    requires = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    wants = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    partOf = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
  };
  unitSettings = types.attrsOf (
    types.oneOf [
      types.bool
      types.int
      types.str
      (types.listOf types.str)
    ]
  );

  serviceType = types.submodule {
    options = unitOptions // {
      serviceConfig = mkOption {
        type = unitSettings;
        default = { };
      };
      environment = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      stopIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
    };
  };
  socketType = types.submodule {
    options = unitOptions // {
      listenStreams = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      socketConfig = mkOption {
        type = unitSettings;
        default = { };
      };
    };
  };

  postgresql = config.services.postgresql;
  caddyLogDir = config.services.caddy.logDir;
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.text = mkOption {
            type = types.nullOr types.str;
            default = null;
          };
          options.source = mkOption {
            type = types.nullOr types.unspecified;
            default = null;
          };
        }
      );
      default = { };
    };
    users.users = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            isSystemUser = mkOption {
              type = types.bool;
              default = false;
            };
            group = mkOption {
              type = types.str;
              default = "";
            };
          };
        }
      );
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { });
      default = { };
    };
    systemd.services = mkOption {
      type = types.attrsOf serviceType;
      default = { };
    };
    systemd.sockets = mkOption {
      type = types.attrsOf socketType;
      default = { };
    };
    systemd.timers = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = unitOptions // {
            timerConfig = mkOption {
              type = unitSettings;
              default = { };
            };
          };
        }
      );
      default = { };
    };
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    services.caddy = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      group = mkOption {
        type = types.str;
        default = "caddy";
      };
      logDir = mkOption {
        type = types.str;
        default = "/var/log/caddy";
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
      };
      # As nixos/modules/services/web-servers/caddy/vhost-options.nix declares them.
      virtualHosts = mkOption {
        type = types.attrsOf (
          types.submodule (
            { name, config, ... }:
            {
              options = {
                hostName = mkOption {
                  type = types.str;
                  default = name;
                };
                serverAliases = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
                };
                logFormat = mkOption {
                  type = types.nullOr types.lines;
                  default = "output file ${caddyLogDir}/access-${config.hostName}.log\n";
                };
                extraConfig = mkOption {
                  type = types.lines;
                  default = "";
                };
              };
            }
          )
        );
        default = { };
      };
    };
    services.postgresql = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      ensureDatabases = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      ensureUsers = mkOption {
        type = types.listOf (
          types.submodule {
            options = {
              name = mkOption { type = types.str; };
              ensureDBOwnership = mkOption {
                type = types.bool;
                default = false;
              };
            };
          }
        );
        default = [ ];
      };
    };
    services.logrotate.settings = mkOption {
      type = types.attrsOf (types.attrsOf types.anything);
      default = { };
    };
  };

  # The checks NixOS itself makes on what the module sets.
  config.assertions =
    map (user: {
      assertion = !user.ensureDBOwnership || builtins.elem user.name postgresql.ensureDatabases;
      message = "services.postgresql.ensureUsers: ${user.name} owns no database of its name (ensureDBOwnership)";
    }) postgresql.ensureUsers
    ++ lib.mapAttrsToList (name: user: {
      assertion = user.isSystemUser && user.group != "";
      message = "users.users.${name}: a system user needs a group";
    }) config.users.users
    ++ lib.mapAttrsToList (name: user: {
      assertion = config.users.groups ? ${user.group};
      message = "users.users.${name}: group ${user.group} does not exist";
    }) config.users.users;
}
