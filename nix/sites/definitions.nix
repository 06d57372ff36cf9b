# Everything one Django site needs on a host, as plain data: systemd units in the NixOS attribute form, tmpfiles
# lines, a Caddyfile fragment and the database to create. The NixOS module and the lab each turn this into their
# own configuration, so both run the same commands in the same order.
# Pure builtins: the lab evaluates this file without nixpkgs.
{
  # Instance name: the key of the site in `django.sites`.
  name,
  # The options of the site, defaults (./defaults.nix) applied.
  site,
  # Absolute path of a Python interpreter that can import django, gunicorn, the worker class' package, the
  # database driver and the project.
  python,
  # `name: text: <path of an executable file>` that runs `text` with a POSIX shell; it writes the `#!` line
  # itself, as `pkgs.writeShellScript` does.
  writeScript,
  # Group of the Caddy process: it owns the gunicorn socket.
  caddyGroup ? "caddy",
  # Directory where Caddy may create log files.
  caddyLogDir ? "/var/log/caddy",
  # Directory Caddy serves the static files from. A stable link to the static files package (switched with
  # the system) keeps the Caddyfile, and so Caddy, untouched by a deploy that changes the code; null serves
  # the package's store path directly, which makes every such deploy reload Caddy.
  staticServeDir ? null,
  # Search path (":"-separated) holding the tools the scripts call: coreutils (id, tr, head, mv), runuser and
  # sudo. It is put in front of the PATH the scripts inherit; null keeps that PATH as it is.
  path ? null,
  # Applied to every single value of the units' sandbox: the NixOS module passes lib.mkDefault, so that a
  # site's own `serviceConfig` value replaces it without mkForce (lists are appended to, as NixOS merges them).
  overridable ? (value: value),
}:
let
  inherit (builtins)
    any
    attrNames
    concatMap
    concatStringsSep
    filter
    groupBy
    head
    isList
    listToAttrs
    map
    match
    replaceStrings
    toString
    ;
  addresses = import ./addresses.nix;

  shellQuote = value: "'" + replaceStrings [ "'" ] [ "'\\''" ] (toString value) + "'";
  lines = concatStringsSep "\n";

  inherit (site) user group baseDir;
  mediaRoot = "${baseDir}/media";
  # Same place as in older django.nix deployments, so an existing key (and the sessions signed with it) is kept.
  secretKeyFile = "${baseDir}/secret_key";
  staticRoot = "${site.staticFilesPackage}";
  socketPath = "/run/gunicorn-${name}/gunicorn.sock";
  caddyLogFile = "${caddyLogDir}/django-${name}.log";

  units = {
    secretKey = "django-secret-key-${name}.service";
    migrate = "django-migrate-${name}.service";
    gunicorn = "gunicorn-${name}.service";
    socket = "gunicorn-${name}.socket";
  };

  usesLocalDatabase = site.databaseUrl == null;
  # Peer authentication maps the Unix user to the role of the same name, and ensureDBOwnership needs the
  # database to be named like its owner: so role and database both take the site user's name.
  database =
    if usesLocalDatabase then
      {
        name = user;
        owner = user;
      }
    else
      null;


  # The older module's documentation describes `extraEnv` as a list of files: that form is read as files.
  extraEnvVariables = if isList site.extraEnv then { } else site.extraEnv;
  extraEnvFiles = (if isList site.extraEnv then site.extraEnv else [ ]) ++ site.extraEnvFiles;

  environment = {
    DJANGO_SETTINGS_MODULE = site.settingsModule;
    DATABASE_URL = if usesLocalDatabase then "postgresql:///${database.name}" else site.databaseUrl;
    ALLOWED_HOSTS = site.hostname;
    MEDIA_ROOT = mediaRoot;
    MEDIA_URL = site.mediaUrl;
    STATIC_URL = site.staticUrl;
    STATIC_ROOT = staticRoot;
    # `python -m` would put the working directory first on sys.path: a `manage-<name>` run from a directory
    # holding a `django/` folder would import that instead.
    PYTHONSAFEPATH = "1";
  }
  # libpq finds the local server by this socket directory whatever default the driver was built with.
  // (if usesLocalDatabase then { PGHOST = "/run/postgresql"; } else { })
  // extraEnvVariables;

  setPath = if path == null then "" else "PATH=${shellQuote path}\${PATH:+:$PATH}\nexport PATH\n";

  # The one place that gives a site process its environment. It runs as the site user, so the secret files are
  # read with that user's rights; `exec` keeps the PID, which gunicorn needs to accept systemd's sockets.
  envWrapper = writeScript "django-env-${name}" ''
    # Environment of the processes of the Django site ${name}; runs its arguments in it.
    # Uploaded media stay readable by the site group (Caddy reads them through it), not by others.
    umask 0027
    ${lines (map (key: "export ${key}=${shellQuote environment.${key}}") (attrNames environment))}
    set -a
    ${lines (map (file: ". ${shellQuote file}") ([ secretKeyFile ] ++ extraEnvFiles))}
    set +a
    exec "$@"
  '';

  # Shell form for the manage script; systemd splits ExecStart on spaces itself (store paths hold none).
  djangoCommand = "${shellQuote envWrapper} ${shellQuote python} -m django";
  djangoExec = "${envWrapper} ${python} -m django";

  # Switches to the site user before anything else, so only that user's rights open the secret files.
  manageScript = writeScript "manage-${name}" ''
    # Runs a Django management command of the site ${name}: manage-${name} <command> [arguments]
    ${setPath}site_user=${shellQuote user}
    if [ "$(id -un)" = "$site_user" ]; then
      exec ${djangoCommand} "$@"
    elif [ "$(id -u)" -eq 0 ]; then
      exec runuser -u "$site_user" -- ${djangoCommand} "$@"
    else
      exec sudo -u "$site_user" -- ${djangoCommand} "$@"
    fi
  '';

  # Written on the host at first start, never in the store; kept afterwards (an existing key file in the older
  # `export SECRET_KEY="..."` form works too, as the wrapper sources it).
  generateSecretKey = writeScript "django-secret-key-${name}" ''
    # Creates the SECRET_KEY file of the Django site ${name} when it is missing or empty.
    set -eu
    ${setPath}umask 077
    key_file=${shellQuote secretKeyFile}
    if [ -s "$key_file" ]; then
      exit 0
    fi
    key=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 64)
    if [ "''${#key}" -ne 64 ]; then
      echo "could not read 64 random characters from /dev/urandom" >&2
      exit 1
    fi
    printf 'SECRET_KEY="%s"\n' "$key" >"$key_file.new"
    mv -f "$key_file.new" "$key_file"
  '';

  # "module" serves module:application; "module:name" names another callable.
  applicationOf = module: if match ".*:.*" module != null then module else "${module}:application";
  # gunicorn-uvicorn: gunicorn's master (systemd's socket, readiness, graceful restarts) with uvicorn's
  # workers, which run the ASGI application.
  usesAsgi = (site.server or "gunicorn") == "gunicorn-uvicorn";
  application = applicationOf (if usesAsgi then site.asgiModule else site.wsgiModule);
  workerClass = if usesAsgi then "uvicorn.workers.UvicornWorker" else site.workerClass;

  gunicornCommand = concatStringsSep " " [
    "${envWrapper}"
    python
    "-m gunicorn"
    "--name gunicorn-${name}"
    "--workers ${toString site.nbWorkers}"
    "--worker-class ${workerClass}"
    # Requests are logged by Caddy. gunicorn's own messages (boot, worker timeouts, tracebacks) go to its
    # standard error, so to the journal of this boot, where a failed deploy and `djdeploy logs` read them.
    "--error-logfile -"
    application
  ];

  # The sandbox of every unit of the site (`systemd-analyze security` rates each 2.0 or less, "OK"): the
  # whole file system read-only but baseDir (media, secret key), no capabilities, devices, kernel settings,
  # other users' processes or privileged system calls. A site needing more sets the unit's own `serviceConfig`
  # (for example `ReadWritePaths = [ "/srv/uploads" ];` or `MemoryDenyWriteExecute = false;` for a JIT): NixOS
  # merges it with this profile, its single values replacing the profile's, its lists added to them.
  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ReadWritePaths = [ baseDir ];
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    DevicePolicy = "closed";
    # Only the site user and root are mapped: files of other users show as nobody, and the unit holds no
    # capability outside its own user namespace.
    PrivateUsers = true;
    CapabilityBoundingSet = "";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    # Local sockets (PostgreSQL, the journal) and outbound IP (HTTPS APIs, SMTP); no netlink, no raw packets.
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    # CPython, greenlet (gevent) and psycopg need no writable executable memory.
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged @resources"
    ];
    # A refused call fails (a library can fall back) rather than killing the process.
    SystemCallErrorNumber = "EPERM";
    RemoveIPC = true;
    # The environment wrapper sets the same: media stay readable by the site group, which Caddy is part of.
    UMask = "0027";
  };
  sandbox =
    overrides:
    builtins.mapAttrs (_: value: if isList value then value else overridable value) (hardening // overrides);

  siteProcess = {
    User = user;
    Group = group;
    WorkingDirectory = baseDir;
  };

  # After both units: on NixOS 25.11 and later, roles and databases exist only once postgresql.target is
  # reached; older releases create them in postgresql.service itself and have no such target (After= and
  # Wants= on a missing unit are harmless, Requires= is not).
  databaseDependencies =
    if usesLocalDatabase then
      {
        after = [
          "network.target"
          "postgresql.service"
          "postgresql.target"
        ];
        requires = [ "postgresql.service" ];
        wants = [ "postgresql.target" ];
      }
    else
      {
        after = [
          "network-online.target"
          "postgresql.service"
          "postgresql.target"
        ];
        requires = [ ];
        wants = [ "network-online.target" ];
      };

  services = scheduledServices // {
    "django-secret-key-${name}" = {
      description = "SECRET_KEY of the Django site ${name}";
      wantedBy = [ "multi-user.target" ];
      # The site directory comes from tmpfiles.
      after = [
        "systemd-tmpfiles-setup.service"
        "systemd-tmpfiles-resetup.service"
      ];
      before = [
        units.migrate
        units.gunicorn
      ];
      # Reads /dev/urandom and writes one file: no network at all.
      serviceConfig =
        sandbox {
          UMask = "0077";
          PrivateNetwork = true;
          RestrictAddressFamilies = "none";
        }
        // {
          Type = "oneshot";
          RemainAfterExit = true;
          User = user;
          Group = group;
          ExecStart = "${generateSecretKey}";
        };
    };

    # RemainAfterExit: the unit stays active, so it runs at boot and whenever its unit file changes, which it
    # does with every change of the site (its ExecStart names the environment wrapper, which holds the package,
    # the static files and the settings): switch-to-configuration then restarts it. An unchanged site is not
    # migrated again, which keeps a deploy without changes fast; `systemctl restart django-migrate-<name>`
    # runs it by hand. stopIfChanged = false makes that a plain `systemctl restart` in the same job as the
    # gunicorn restart, so gunicorn (After= this unit) starts again only once the migrations are done; it is
    # stopped meanwhile, connections waiting in its socket's queue. djdeploy applies the migrations that are
    # safe for the old release before the switch, so this unit then finds nothing to do.
    "django-migrate-${name}" = {
      description = "Database migrations of the Django site ${name}";
      wantedBy = [ "multi-user.target" ];
      before = [ units.gunicorn ];
      after = databaseDependencies.after ++ [ units.secretKey ];
      requires = databaseDependencies.requires ++ [ units.secretKey ];
      inherit (databaseDependencies) wants;
      stopIfChanged = false;
      # The local database is reached over its Unix socket, which a private network keeps reachable.
      serviceConfig =
        sandbox { PrivateNetwork = usesLocalDatabase; }
        // siteProcess
        // {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${djangoExec} migrate --noinput";
        };
    };

    # Socket activated: systemd owns the listening socket (./gunicorn-<name>.socket), so a restart never
    # closes it; connections that arrive while gunicorn restarts wait in its queue instead of failing.
    # stopIfChanged = false makes switch-to-configuration `systemctl restart` this unit alone; with the default
    # it would stop and start the socket too, refusing connections in between.
    "gunicorn-${name}" = {
      description = "gunicorn of the Django site ${name}";
      wantedBy = [ "multi-user.target" ];
      requires = [
        units.socket
        units.migrate
        units.secretKey
      ];
      after = [
        "network.target"
        units.socket
        units.migrate
        units.secretKey
      ];
      stopIfChanged = false;
      serviceConfig =
        sandbox { }
        // siteProcess
        // {
          # gunicorn reports READY=1 once it listens, so a restart returns when the new master is up.
          Type = "notify";
          NotifyAccess = "main";
          ExecStart = gunicornCommand;
          # SIGTERM to the master only: it stops the workers gracefully, finishing their requests.
          KillMode = "mixed";
          Restart = "on-failure";
        };
    };
  };

  # Scheduled management commands: a oneshot service each, started by a timer of the same name. The service
  # is wanted by nothing, so a deploy that changes it does not run it (switch-to-configuration restarts
  # active units only); its timer does, and `systemctl start <service>` by hand.
  scheduledJobs = map (
    job:
    let
      options = site.scheduled.${job};
      unitName = "django-scheduled-${name}-${job}";
    in
    {
      name = job;
      inherit unitName options;
      service = "${unitName}.service";
      timer = "${unitName}.timer";
    }
  ) (attrNames (site.scheduled or { }));

  # One ExecStart argument, quoted for systemd: its specifiers and variables are taken literally.
  systemdArgument =
    argument:
    "\"" + replaceStrings [ "\\" "\"" "%" "$" ] [ "\\\\" "\\\"" "%%" "$$" ] argument + "\"";

  scheduledServices = listToAttrs (
    map (job: {
      name = job.unitName;
      value = {
        description = "Scheduled command ${job.name} of the Django site ${name}";
        after = databaseDependencies.after ++ [
          units.secretKey
          units.migrate
        ];
        requires = databaseDependencies.requires ++ [ units.secretKey ];
        inherit (databaseDependencies) wants;
        # The sandbox of gunicorn: such commands send mail and call other servers as the site does.
        serviceConfig =
          sandbox { }
          // siteProcess
          // {
            Type = "oneshot";
            ExecStart = concatStringsSep " " ([ djangoExec ] ++ map systemdArgument job.options.command);
          };
      };
    }) scheduledJobs
  );

  timers = listToAttrs (
    map (job: {
      name = job.unitName;
      value = {
        description = "Timer of the scheduled command ${job.name} of the Django site ${name}";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = job.options.onCalendar;
          # A run missed while the host was off happens at the next boot.
          Persistent = true;
        };
      };
    }) scheduledJobs
  );

  # No store path in here: a deploy never changes (and so never restarts) the socket.
  sockets."gunicorn-${name}" = {
    description = "Socket of the gunicorn of the Django site ${name}";
    wantedBy = [ "sockets.target" ];
    listenStreams = [ socketPath ];
    socketConfig = {
      SocketUser = user;
      SocketGroup = caddyGroup;
      SocketMode = "0660";
    };
  };

  tmpfiles = [
    "d ${baseDir} 0750 ${user} ${group} - -"
    "d ${mediaRoot} 0750 ${user} ${group} - -"
    # Older deployments left the key readable by the group, which Caddy is now part of.
    "z ${secretKeyFile} 0600 ${user} ${group} - -"
  ];

  # Caddyfile: a block is a list of lines; tabs, as `caddy fmt` writes them.
  block = address: body: [ "${address} {" ] ++ map (line: "\t${line}") body ++ [ "}" ];
  # The log block is the virtual host's logFormat, which NixOS writes first in the block.
  commonLines =
    useTls:
    [ "header -Server" ]
    # Error responses (401, 404, 502) skip the handlers above; this removes the header from them too.
    ++ block "handle_errors" [ "header -Server" ]
    ++ (if useTls && site.disableACME then [ "tls internal" ] else [ ]);

  # Store paths all have the same mtime (1970): their ETag and Last-Modified would not change between deploys.
  fileServer =
    route:
    [ "root * ${route.root}" ]
    ++ (
      if route.isStatic then
        block "header" [
          "-ETag"
          "-Last-Modified"
        ]
      else
        [ ]
    )
    ++ [ "file_server" ];
  # handle_path strips the prefix: /static/css/a.css is read from <root>/css/a.css.
  fileHandler =
    route: prefix:
    if prefix == "/" then
      block "handle" (fileServer route)
    else
      block "handle_path ${prefix}*" (fileServer route);

  fileRoutes = [
    {
      url = site.staticUrl;
      root = if staticServeDir == null then staticRoot else staticServeDir;
      isStatic = true;
    }
    {
      url = site.mediaUrl;
      root = mediaRoot;
      isStatic = false;
    }
  ];
  localRoutes = filter (route: addresses.parseUrl route.url == null) fileRoutes;
  externalRoutes = map (route: route // { parsed = addresses.parseUrl route.url; }) (
    filter (route: addresses.parseUrl route.url != null) fileRoutes
  );
  externalRoutesByAddress = groupBy (route: addresses.urlAddress route.parsed) externalRoutes;

  usesTls = site.port != 80;
  auth = site.auth;
  # A Caddy virtual host as NixOS declares it (services.caddy.virtualHosts.<address>).
  virtualHost = address: body: {
    name = address;
    value = {
      logFormat = "output file ${caddyLogFile}\n";
      extraConfig = lines body + "\n";
    };
  };
  mainHost = virtualHost (addresses.hostAddress site.port site.hostname) (
    commonLines usesTls
    ++ (
      if auth == null then
        [ ]
      else
        block "basic_auth" [ "${auth.user} ${toString (auth.passwordHash or null)}" ]
    )
    # handle blocks are exclusive: static and media requests never reach gunicorn.
    ++ concatMap (route: fileHandler route route.url) localRoutes
    ++ block "handle" [ "reverse_proxy unix/${socketPath}" ]
  );
  aliasHosts = map (
    alias:
    virtualHost (addresses.hostAddress site.port alias) (
      commonLines usesTls ++ [ "redir ${addresses.canonicalUrl site.port site.hostname}{uri} permanent" ]
    )
  ) site.aliases;
  externalHosts = map (
    address:
    let
      routes = externalRoutesByAddress.${address};
    in
    virtualHost address (
      commonLines ((head routes).parsed.scheme == "https")
      ++ concatMap (route: fileHandler route route.parsed.path) routes
      ++ (
        if any (route: route.parsed.path == "/") routes then
          [ ]
        else
          block "handle" [ "respond 404" ]
      )
    )
  ) (attrNames externalRoutesByAddress);

  # The main host, one per alias (redirecting to it) and one per other host of a full static or media URL.
  virtualHosts = listToAttrs ([ mainHost ] ++ aliasHosts ++ externalHosts);
  caddyConfig = (import ./caddyfile.nix).render virtualHosts;
in
{
  inherit
    name
    user
    group
    baseDir
    secretKeyFile
    socketPath
    caddyLogFile
    environment
    envWrapper
    manageScript
    services
    sockets
    timers
    tmpfiles
    virtualHosts
    caddyConfig
    database
    ;
  secretKeyScript = generateSecretKey;
  # What the deployer needs to check the site: written to etc/djdeploy/sites.json of the system.
  manifest = {
    inherit
      name
      user
      group
      baseDir
      secretKeyFile
      socketPath
      database
      ;
    inherit (site) hostname aliases port;
    auth = site.auth != null;
    healthCheck = {
      path = site.healthCheckPath;
      # The deployer sends no password: a guarded site answers 401 when it is up.
      status = if site.auth == null then 200 else 401;
    };
    manageCommand = "manage-${name}";
    # Units that are active while the site runs.
    units = [
      units.secretKey
      units.migrate
      units.socket
      units.gunicorn
    ]
    ++ map (job: job.timer) scheduledJobs;
    scheduled = map (job: {
      inherit (job) name service timer;
      inherit (job.options) command onCalendar;
    }) scheduledJobs;
  };
  manageCommand = "manage-${name}";
  # Caddy reads the media files through the site group (they are not world-readable).
  caddySupplementaryGroups = [ group ];
}
