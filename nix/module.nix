# NixOS module `django.sites.<instance>`: serves Django projects with gunicorn behind Caddy, with a local
# PostgreSQL database each. The units, scripts and Caddyfile come from ./sites/definitions.nix, which the lab
# uses as well.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) literalExpression mkOption types;

  cfg = config.django;
  siteDefaults = import ./sites/defaults.nix;
  siteAssertions = import ./sites/assertions.nix;
  siteDefinitions = import ./sites/definitions.nix;

  # The interpreter the package was built with: a `python` passthru (nixpkgs helpers of this flake,
  # poetry2nix) or, for buildPythonPackage results, `pythonModule`.
  pythonOf =
    name: package:
    package.python or package.pythonModule or (throw ''
      django.sites.${name}.package (${package.name or "?"}) says neither which Python it was built with
      (a `python` passthru) nor is it a Python module (`pythonModule`): build it with
      python.pkgs.buildPythonApplication or buildPythonPackage and add `passthru.python = python;`. A ready
      environment (uv2nix's mkVirtualEnv, poetry2nix's mkPoetryEnv) goes in django.sites.${name}.pythonEnv.
    '');

  # A ready environment (pythonEnv) as it is; otherwise the package in python.withPackages, which keeps only
  # Python modules: a buildPythonApplication result would silently be left out, so it is made a module first.
  pythonEnvOf =
    name: site:
    let
      python = pythonOf name site.package;
    in
    if site.pythonEnv != null then
      site.pythonEnv
    else
      python.withPackages (_: [ (python.pkgs.toPythonModule site.package) ] ++ site.extraPackages);

  # /etc/<this>: the static files of a site, switched with the system (see staticServeDir).
  staticEtcPath = name: "djdeploy/static/${name}";

  definitionsOf =
    name: site:
    siteDefinitions {
      inherit name site;
      python = "${pythonEnvOf name site}/bin/python";
      writeScript = pkgs.writeShellScript;
      # A site's own serviceConfig values replace those of the units' sandbox, no mkForce needed.
      overridable = lib.mkDefault;
      caddyGroup = config.services.caddy.group;
      caddyLogDir = config.services.caddy.logDir;
      staticServeDir = "/etc/${staticEtcPath name}";
      path = "${
        lib.makeBinPath [
          pkgs.coreutils
          pkgs.util-linux
        ]
      }:/run/wrappers/bin";
    };

  siteModule =
    { name, config, ... }:
    let
      defaults = siteDefaults name;
      packageModuleName = builtins.replaceStrings [ "-" ] [ "_" ] (
        config.package.pname or (lib.getName config.package)
      );
    in
    {
      options = {
        package = mkOption {
          type = types.package;
          default =
            if config.pythonEnv != null then
              config.pythonEnv
            else
              throw "django.sites.${name}.package is not set: give the Django project as a Python package, or a ready environment as pythonEnv.";
          defaultText = literalExpression "pythonEnv, when set";
          example = literalExpression "pkgs.mysite";
          description = ''
            The Django project as a Python package. It must tell which Python it was built with: a `python`
            passthru (as `lib.mkSite` of this flake and poetry2nix's `mkPoetryApplication` set) or, for a
            `buildPythonPackage` result, its `pythonModule`. `buildPythonApplication` results are supported.
            The module installs it with `extraPackages` in an environment of that Python; a ready environment
            goes in `pythonEnv` instead.
          '';
        };

        pythonEnv = mkOption {
          type = types.nullOr types.package;
          default = null;
          example = literalExpression ''pythonSet.mkVirtualEnv "mysite-env" workspace.deps.default'';
          description = ''
            A ready Python environment whose `bin/python` imports the project and everything it runs with:
            Django, gunicorn, the package of `workerClass` (`gevent` by default, `uvicorn` for
            `server = "gunicorn-uvicorn"`) and the database driver. uv2nix's `mkVirtualEnv` and poetry2nix's
            `mkPoetryEnv` build such environments. Every process of the site runs this interpreter as it is:
            `extraPackages` is not used and `package` defaults to it. The defaults of `settingsModule` and
            `wsgiModule` come from the package's name, which an environment's name rarely is: set them.
          '';
        };

        staticFilesPackage = mkOption {
          type = types.package;
          example = literalExpression "pkgs.mysite-static";
          description = ''
            Store path holding the static files of the site, usually the output of `collectstatic` (see
            `lib.mkStaticFiles` of this flake). It becomes `STATIC_ROOT` and Caddy serves it under `staticUrl`.
          '';
        };

        extraPackages = mkOption {
          type = types.listOf types.package;
          default =
            let
              python = pythonOf name config.package;
            in
            if config.pythonEnv != null then
              [ ]
            else if config.server == "gunicorn-uvicorn" then
              [
                python.pkgs.gunicorn
                python.pkgs.uvicorn
              ]
            else
              [
                python.pkgs.gunicorn
                python.pkgs.gevent
              ];
          defaultText = literalExpression ''
            [ python.pkgs.gunicorn python.pkgs.gevent ] (uvicorn for gevent with server = "gunicorn-uvicorn";
            none with pythonEnv)
          '';
          example = literalExpression "[ python.pkgs.gunicorn python.pkgs.gevent python.pkgs.sentry-sdk ]";
          description = ''
            Extra Python packages installed next to the project. When you set this option, keep `gunicorn` and
            the package of `workerClass` (`gevent` by default) in it, unless the project depends on them. Not
            used with `pythonEnv`, which holds everything already.
          '';
        };

        hostname = mkOption {
          type = types.str;
          example = "mysite.com";
          description = ''
            The host name the site is served under; also the value of `ALLOWED_HOSTS`.
          '';
        };

        aliases = mkOption {
          type = types.listOf types.str;
          default = defaults.aliases;
          example = [ "www.mysite.com" ];
          description = ''
            Other host names of the site: requests to them are redirected (301) to `hostname`.
          '';
        };

        settingsModule = mkOption {
          type = types.str;
          default = "${packageModuleName}.config.settings.base";
          defaultText = literalExpression ''"''${package.pname}.config.settings.base"'';
          example = "mysite.config.settings.prod";
          description = "Dotted Python path of the settings module (`DJANGO_SETTINGS_MODULE`).";
        };

        wsgiModule = mkOption {
          type = types.str;
          default = "${packageModuleName}.config.wsgi";
          defaultText = literalExpression ''"''${package.pname}.config.wsgi"'';
          example = "mysite.config.wsgi";
          description = ''
            Dotted Python path of the WSGI module; gunicorn serves its `application` (write `module:name` for
            another name).
          '';
        };

        server = mkOption {
          type = types.enum [
            "gunicorn"
            "gunicorn-uvicorn"
          ];
          default = defaults.server;
          example = "gunicorn-uvicorn";
          description = ''
            How the site is served, always by gunicorn on the socket systemd holds (so restarts keep
            connections waiting, not refused): `"gunicorn"` runs the WSGI application (`wsgiModule`) in
            gunicorn's workers of `workerClass`; `"gunicorn-uvicorn"` runs the ASGI application (`asgiModule`)
            in uvicorn's workers, for async views and Channels, and needs `uvicorn` in the environment.
          '';
        };

        asgiModule = mkOption {
          type = types.str;
          default = "${packageModuleName}.config.asgi";
          defaultText = literalExpression ''"''${package.pname}.config.asgi"'';
          example = "mysite.config.asgi";
          description = ''
            Dotted Python path of the ASGI module served when `server` is `"gunicorn-uvicorn"`; its
            `application` is served (write `module:name` for another name).
          '';
        };

        port = mkOption {
          type = types.port;
          default = defaults.port;
          example = 8443;
          description = ''
            Port the site is served on. 443 and any other port except 80 serve HTTPS (URLs then carry the
            port); 80 serves plain HTTP.
          '';
        };

        auth = mkOption {
          type = types.nullOr (
            types.submodule {
              imports = [
                (lib.mkRemovedOptionModule [ "password" ] ''
                  Caddy accepts no plaintext password: run `caddy hash-password` (it asks for the password) and
                  set auth.passwordHash to the hash it prints.
                '')
              ];
              options = {
                user = mkOption {
                  type = types.str;
                  example = "jane.doe";
                  description = "User name asked for by the HTTP authentication.";
                };
                passwordHash = mkOption {
                  type = types.nullOr types.str;
                  default = null;
                  example = "$2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG";
                  description = ''
                    bcrypt hash of the password, as printed by `caddy hash-password`. Caddy accepts no
                    plaintext password. The hash is stored in the world-readable Nix store.
                  '';
                };
                # Where lib.mkRemovedOptionModule puts its check; the module passes it on to `assertions`.
                assertions = mkOption {
                  type = types.listOf types.unspecified;
                  default = [ ];
                  internal = true;
                  visible = false;
                  description = "Checks of this submodule, passed on to the system's `assertions`.";
                };
              };
            }
          );
          default = defaults.auth;
          example = literalExpression ''{ user = "jane.doe"; passwordHash = "$2a$14$..."; }'';
          description = ''
            Require HTTP basic authentication for the whole site (static and media files included).
          '';
        };

        mediaUrl = mkOption {
          type = types.str;
          default = defaults.mediaUrl;
          example = "https://media.mysite.com/";
          description = ''
            URL of the media files (`MEDIA_URL`). A path is served from `baseDir`/media by the site's own Caddy
            block; a full URL on another host gets a Caddy site of its own.
          '';
        };

        staticUrl = mkOption {
          type = types.str;
          default = defaults.staticUrl;
          example = "https://static.mysite.com/";
          description = ''
            URL of the static files (`STATIC_URL`), served from `staticFilesPackage`. A path is served by the
            site's own Caddy block; a full URL on another host gets a Caddy site of its own.
          '';
        };

        nbWorkers = mkOption {
          type = types.ints.positive;
          default = defaults.nbWorkers;
          example = 4;
          description = "Number of gunicorn workers.";
        };

        workerClass = mkOption {
          type = types.str;
          default = defaults.workerClass;
          example = "sync";
          description = ''
            gunicorn worker class of `server = "gunicorn"`; its package must be in the environment (see
            `extraPackages`). `"gunicorn-uvicorn"` uses uvicorn's worker instead.
          '';
        };

        extraEnv = mkOption {
          # The older module's documentation gives a list of files here: sites written for it keep working.
          type = types.either (types.attrsOf types.str) (types.listOf types.str);
          default = defaults.extraEnv;
          example = {
            SENTRY_ENVIRONMENT = "production";
          };
          description = ''
            Additional environment variables of every process of the site (gunicorn, migrations, scheduled
            commands, `manage-<name>`). They are stored in the Nix store: put secrets in `extraEnvFiles`. A list
            is read as `extraEnvFiles`, as the older module's documentation described this option, with a
            warning.
          '';
        };

        extraEnvFiles = mkOption {
          type = types.listOf types.str;
          default = defaults.extraEnvFiles;
          example = literalExpression "[ config.age.secrets.mysite.path ]";
          description = ''
            Files outside the Nix store with `KEY="value"` lines, read as environment variables by every process
            of the site after `extraEnv` (so they win). They are read as the site user, who must be able to
            read them (agenix: `owner = "<user>"`).
          '';
        };

        disableACME = mkOption {
          type = types.bool;
          default = defaults.disableACME;
          description = ''
            Use certificates from Caddy's local authority (`tls internal`) instead of ACME: for tests and
            machines that cannot be reached from the Internet.
          '';
        };

        databaseUrl = mkOption {
          type = types.nullOr types.str;
          default = defaults.databaseUrl;
          example = "postgresql://mysite@db.example.com/mysite";
          description = ''
            `DATABASE_URL` of a database the site brings itself. When null, a local PostgreSQL database and
            role named after `user` are created, reached over the local socket with peer authentication
            (`postgresql:///<user>`).
          '';
        };

        baseDir = mkOption {
          type = types.str;
          default = defaults.baseDir;
          defaultText = literalExpression ''"/var/www/<name>"'';
          description = ''
            Directory of the site's state: `media/` (`MEDIA_ROOT`) and the generated `secret_key`.
          '';
        };

        healthCheckPath = mkOption {
          type = types.strMatching "/.*";
          default = defaults.healthCheckPath;
          example = "/healthz";
          description = ''
            Path that `inv deploy` requests through Caddy after switching: the deploy rolls back unless it
            answers 200 (401 when `auth` is set, as the deployer sends no password).
          '';
        };

        user = mkOption {
          type = types.str;
          default = defaults.user;
          defaultText = literalExpression "<name>";
          description = ''
            System user running gunicorn, the migrations and `manage-<name>`; created automatically. The local
            database and its owner role are named after it.
          '';
        };

        group = mkOption {
          type = types.str;
          default = defaults.group;
          defaultText = literalExpression "<name>";
          description = "Primary group of the site user; created automatically. Caddy joins it to read media files.";
        };

        scheduled = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                command = mkOption {
                  type = types.nonEmptyListOf types.str;
                  example = [
                    "clean_orders"
                    "--older-than"
                    "30"
                  ];
                  description = ''
                    The management command and its arguments, as given to `manage-<name>` (each item one
                    argument, taken literally).
                  '';
                };
                onCalendar = mkOption {
                  type = types.str;
                  example = "*-*-* 03:00:00";
                  description = ''
                    When the command runs, as a systemd calendar event (`OnCalendar=` of the timer, see
                    {manpage}`systemd.time(7)`). A run missed while the host was off happens at the next boot.
                  '';
                };
              };
            }
          );
          default = defaults.scheduled;
          example = literalExpression ''
            {
              clearsessions = { command = [ "clearsessions" ]; onCalendar = "daily"; };
              clean_orders = { command = [ "clean_orders" "--older-than" "30" ]; onCalendar = "*-*-* 03:00:00"; };
            }
          '';
          description = ''
            Management commands run on a schedule. Each is a oneshot service
            `django-scheduled-<name>-<job>` with the sandbox of the site's other units, run as the site user with
            the site's environment, and a timer of the same name; `systemctl start
            django-scheduled-<name>-<job>` runs it by hand and `djdeploy status` shows its last run. A deploy
            never runs it, but checks that its timer is active, as it checks the site's other units. The job's
            name may hold letters, digits and `_`.
          '';
        };

        manageScript = mkOption {
          type = types.package;
          readOnly = true;
          default = pkgs.linkFarm "manage-${name}" [
            {
              name = "bin/manage-${name}";
              path = (definitionsOf name config).manageScript;
            }
          ];
          defaultText = literalExpression "<package with bin/manage-<name>>";
          description = ''
            Package with `bin/manage-<name>`, which runs `python -m django <arguments>` as the site user with
            the site's environment (as root or that user directly, otherwise through sudo). It is also
            installed in the system path.
          '';
        };
      };
    };

  definitions = lib.mapAttrs definitionsOf cfg.sites;
  allDefinitions = lib.attrValues definitions;
  databases = lib.unique (lib.filter (database: database != null) (map (d: d.database) allDefinitions));
in
{
  options.django.sites = mkOption {
    type = types.attrsOf (types.submodule siteModule);
    default = { };
    example = literalExpression ''
      {
        mysite_prod = {
          package = pkgs.mysite;
          staticFilesPackage = pkgs.mysite-static;
          hostname = "mysite.com";
          aliases = [ "www.mysite.com" ];
          settingsModule = "mysite.config.settings.prod";
        };
      }
    '';
    description = ''
      Django sites, by instance name. The name appears in the units (`gunicorn-<name>`,
      `django-migrate-<name>`), the `manage-<name>` command and the default user, group and `baseDir`.
      The units run sandboxed, writing only to `baseDir`; a site needing more sets
      `systemd.services.<unit>.serviceConfig`, whose values replace the sandbox's and whose lists extend them.
    '';
  };

  config = lib.mkIf (cfg.sites != { }) {
    # The checks of removed options come first; they name the option by its place in the site.
    assertions =
      lib.concatLists (
        lib.mapAttrsToList (
          name: site:
          map (check: check // { message = "django.sites.${name}.auth: ${check.message}"; }) (
            if site.auth == null then [ ] else site.auth.assertions
          )
        ) cfg.sites
      )
      ++ siteAssertions cfg.sites;

    warnings = lib.concatLists (
      lib.mapAttrsToList (
        name: site:
        lib.optional (builtins.isList site.extraEnv)
          "django.sites.${name}.extraEnv is a list of files: set extraEnvFiles instead."
      ) cfg.sites
    );

    users.users = lib.mapAttrs' (
      _: site:
      lib.nameValuePair site.user {
        isSystemUser = true;
        inherit (site) group;
      }
    ) cfg.sites;
    users.groups = lib.mapAttrs' (_: site: lib.nameValuePair site.group { }) cfg.sites;

    services.postgresql = lib.mkIf (databases != [ ]) {
      enable = true;
      ensureDatabases = map (database: database.name) databases;
      ensureUsers = map (database: {
        name = database.owner;
        ensureDBOwnership = true;
      }) databases;
    };

    # A virtual host per address of a site (the lab serves the same text). A configuration's own
    # `services.caddy.virtualHosts."<hostname>".extraConfig` joins the site's block; its own logFormat
    # replaces the site's log file.
    services.caddy = {
      enable = true;
      virtualHosts = lib.mkMerge (
        map (
          d:
          lib.mapAttrs (_: vhost: {
            logFormat = lib.mkDefault vhost.logFormat;
            inherit (vhost) extraConfig;
          }) d.virtualHosts
        ) allDefinitions
      );
    };

    systemd.services = lib.mkMerge (
      map (d: d.services) allDefinitions
      ++ [
        {
          # On the unit rather than the caddy user: a changed Caddyfile only reloads Caddy, which would not
          # pick up a new group, but a changed unit restarts it.
          caddy.serviceConfig.SupplementaryGroups = lib.unique (
            lib.concatMap (d: d.caddySupplementaryGroups) allDefinitions
          );
        }
      ]
    );
    systemd.sockets = lib.mkMerge (map (d: d.sockets) allDefinitions);
    systemd.timers = lib.mkMerge (map (d: d.timers) allDefinitions);
    systemd.tmpfiles.rules = lib.concatMap (d: d.tmpfiles) allDefinitions;

    environment.systemPackages = lib.mapAttrsToList (_: site: site.manageScript) cfg.sites;

    # What djdeploy's health checks and day-two tasks read from the built system.
    environment.etc = {
      "djdeploy/sites.json".text = builtins.toJSON (map (d: d.manifest) allDefinitions);
    }
    // lib.mapAttrs' (
      name: site: lib.nameValuePair (staticEtcPath name) { source = site.staticFilesPackage; }
    ) cfg.sites;
  };
}
