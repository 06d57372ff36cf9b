# Checks of site options that types cannot express (or that the lab, which has no types, needs too).
# `sites` maps instance names to their options, defaults applied. The result is a list of
# `{ assertion; message; }`: the NixOS module feeds it to `assertions`, the lab stops at the first failing one.
# Each check tests the types it relies on first, so a wrong value gives its own message, not an evaluation error.
# Pure builtins: the lab evaluates this file without nixpkgs.
sites:
let
  inherit (builtins)
    all
    attrNames
    attrValues
    concatLists
    concatStringsSep
    elem
    filter
    foldl'
    groupBy
    head
    isAttrs
    isInt
    isList
    isString
    length
    match
    toJSON
    ;
  addresses = import ./addresses.nix;

  matches = regex: value: isString value && match regex value != null;
  unique = foldl' (kept: item: if elem item kept then kept else kept ++ [ item ]) [ ];
  show = value: if isString value then "\"${value}\"" else toJSON value;

  hostnameRegex = "[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?";
  # A path prefix such as "/static/", or a full URL such as "https://cdn.example.com/static/".
  urlPrefixRegex = "/[^/[:space:]][^[:space:]]*/";
  fullUrlRegex = "https?://[^/[:space:]]+/([^[:space:]]*/)?";
  # Unix user and group names; the user also names the PostgreSQL role and database.
  accountRegex = "[A-Za-z_][A-Za-z0-9_.-]{0,31}";
  # A bcrypt hash as printed by `caddy hash-password`.
  bcryptRegex = "\\$2[abxy]?\\$[0-9]{2}\\$[./A-Za-z0-9]{53}";
  pythonModuleRegex = "[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*";
  shellVariableRegex = "[A-Za-z_][A-Za-z0-9_]*";

  # WSGI under gunicorn's own workers, or ASGI under uvicorn's workers in gunicorn.
  servers = [
    "gunicorn"
    "gunicorn-uvicorn"
  ];

  hashHelp = "Caddy only accepts hashed passwords: run `caddy hash-password` (it asks for the password) and set auth.passwordHash to the hash it prints, e.g. auth = { user = \"jane\"; passwordHash = \"$2a$14$...\"; }.";

  authChecks =
    prefix: auth:
    if auth == null then
      [ ]
    else if !isAttrs auth then
      [
        {
          assertion = false;
          message = "${prefix}.auth must be null or { user = \"...\"; passwordHash = \"...\"; }.";
        }
      ]
    else
      [
        # A plaintext `password` is no option of the NixOS module (lib.mkRemovedOptionModule says so there).
        {
          assertion = matches bcryptRegex (auth.passwordHash or null);
          message = "${prefix}.auth.passwordHash must be a bcrypt hash, got ${show (auth.passwordHash or null)}. ${hashHelp}";
        }
        {
          assertion = matches "[^[:space:]\"{}#]+" (auth.user or null);
          message = "${prefix}.auth.user must be a non-empty user name without spaces, quotes, braces or `#`, got ${show (auth.user or null)}.";
        }
      ];

  urlChecks = prefix: optionName: value: {
    assertion = matches urlPrefixRegex value || matches fullUrlRegex value;
    message = "${prefix}.${optionName} must be a path that starts and ends with \"/\" (such as \"/static/\") or a full URL ending with \"/\" (such as \"https://cdn.example.com/static/\"), got ${show value}.";
  };

  siteChecks =
    name: site:
    let
      prefix = "django.sites.${name}";
      hostsAreValid = matches hostnameRegex (site.hostname or null) && isList site.aliases;
      isLocalDatabase = site.databaseUrl == null;
    in
    [
      {
        assertion = matches "[A-Za-z0-9_][A-Za-z0-9_-]*" name;
        message = "django.sites: the instance name ${show name} may only contain letters, digits, `_` and `-`: it names the units, the directories and the manage-<name> command.";
      }
      {
        assertion = site ? hostname;
        message = "${prefix}.hostname is not set: it is the host name the site is served under.";
      }
      {
        assertion = site ? staticFilesPackage;
        message = "${prefix}.staticFilesPackage is not set: it is the store path holding the output of `collectstatic`.";
      }
      {
        assertion = matches pythonModuleRegex (site.settingsModule or null);
        message = "${prefix}.settingsModule must be a dotted Python module path such as \"mysite.config.settings.prod\", got ${show (site.settingsModule or null)}.";
      }
      {
        assertion = matches "${pythonModuleRegex}(:[A-Za-z_][A-Za-z0-9_]*)?" (site.wsgiModule or null);
        message = "${prefix}.wsgiModule must be a dotted Python module path such as \"mysite.config.wsgi\", got ${show (site.wsgiModule or null)}.";
      }
      {
        assertion = elem (site.server or null) servers;
        message = "${prefix}.server must be one of ${concatStringsSep ", " (map show servers)}, got ${show (site.server or null)}.";
      }
      {
        assertion = site.server or null != "gunicorn-uvicorn" || matches "${pythonModuleRegex}(:[A-Za-z_][A-Za-z0-9_]*)?" (site.asgiModule or null);
        message = "${prefix}.asgiModule must be a dotted Python module path such as \"mysite.config.asgi\" (server is \"gunicorn-uvicorn\"), got ${show (site.asgiModule or null)}.";
      }
      {
        assertion = !(site ? hostname) || matches hostnameRegex site.hostname;
        message = "${prefix}.hostname must be a host name such as \"example.com\" (no scheme, port or path), got ${show (site.hostname or null)}.";
      }
      {
        assertion = isList site.aliases && all (matches hostnameRegex) site.aliases;
        message = "${prefix}.aliases must be a list of host names such as \"www.example.com\" (no scheme, port or path), got ${show site.aliases}.";
      }
      {
        assertion = !hostsAreValid || !(elem site.hostname site.aliases);
        message = "${prefix}.aliases contains the hostname ${show (site.hostname or null)} itself: aliases are the other names that redirect to it.";
      }
      {
        assertion = isInt site.port && site.port >= 1 && site.port <= 65535;
        message = "${prefix}.port must be a TCP port between 1 and 65535, got ${show site.port}.";
      }
      {
        assertion = isInt site.nbWorkers && site.nbWorkers >= 1;
        message = "${prefix}.nbWorkers must be at least 1, got ${show site.nbWorkers}.";
      }
      {
        assertion = matches "[A-Za-z0-9_.:-]+" site.workerClass;
        message = "${prefix}.workerClass must name a gunicorn worker class such as \"gevent\" or \"sync\", got ${show site.workerClass}.";
      }
      (urlChecks prefix "staticUrl" site.staticUrl)
      (urlChecks prefix "mediaUrl" site.mediaUrl)
      {
        assertion = site.staticUrl != site.mediaUrl;
        message = "${prefix}.staticUrl and mediaUrl are both ${show site.staticUrl}: Django needs them to differ.";
      }
      {
        assertion =
          let
            fileHostKeys = map addresses.urlKey (
              filter (url: url != null) (
                map addresses.parseUrl (filter isString [
                  site.staticUrl
                  site.mediaUrl
                ])
              )
            );
            siteHostKeys = map (addresses.hostKey site.port) ([ site.hostname ] ++ site.aliases);
          in
          !hostsAreValid || !isInt site.port || all (key: !(elem key siteHostKeys)) fileHostKeys;
        message = "${prefix}: a full staticUrl or mediaUrl must use another host than the hostname and the aliases; for the same host use a path such as \"/static/\".";
      }
      {
        assertion = isAttrs site.extraEnv || isList site.extraEnv;
        message = "${prefix}.extraEnv must be an attribute set of environment variables, got ${show site.extraEnv}.";
      }
      {
        assertion = !isAttrs site.extraEnv || all (matches shellVariableRegex) (attrNames site.extraEnv);
        message = "${prefix}.extraEnv has names that are not valid environment variable names: ${
          concatStringsSep ", " (filter (key: !matches shellVariableRegex key) (attrNames site.extraEnv))
        }.";
      }
      {
        assertion =
          isList site.extraEnvFiles
          && all (matches "/[^[:space:]]*") (site.extraEnvFiles ++ (if isList site.extraEnv then site.extraEnv else [ ]));
        message = "${prefix}.extraEnvFiles must be absolute paths of files outside the Nix store (such as \"/run/agenix/mysite\"), as strings.";
      }
      {
        assertion = matches "/[^[:space:]{}\"'#]*[^/[:space:]{}\"'#]" site.baseDir;
        message = "${prefix}.baseDir must be an absolute path without spaces, quotes, braces or a trailing \"/\", got ${show site.baseDir}.";
      }
      {
        assertion = matches accountRegex site.user;
        message = "${prefix}.user must be a Unix user name (letters, digits, `_`, `.`, `-`, at most 32 characters), got ${show site.user}.";
      }
      {
        assertion = matches accountRegex site.group;
        message = "${prefix}.group must be a Unix group name (letters, digits, `_`, `.`, `-`, at most 32 characters), got ${show site.group}.";
      }
      {
        assertion = isLocalDatabase || matches "[A-Za-z][A-Za-z0-9+.-]*://.*" site.databaseUrl;
        message = "${prefix}.databaseUrl must be null (a local PostgreSQL database) or a URL such as \"postgresql://user@db.example.com/mysite\".";
      }
    ]
    ++ authChecks prefix site.auth
    ++ scheduledChecks prefix (site.scheduled or { });

  # A job's name ends its units' names (django-scheduled-<site>-<job>): without "-", two sites' jobs never
  # share a unit.
  scheduledChecks =
    prefix: scheduled:
    if !isAttrs scheduled then
      [
        {
          assertion = false;
          message = "${prefix}.scheduled must be an attribute set of commands, such as { clearsessions = { command = [ \"clearsessions\" ]; onCalendar = \"daily\"; }; }.";
        }
      ]
    else
      concatLists (
        map (
          job:
          let
            options = scheduled.${job};
            command = options.command or null;
          in
          [
            {
              assertion = matches "[A-Za-z0-9_]+" job;
              message = "${prefix}.scheduled: the name ${show job} may only contain letters, digits and `_`: it ends the names of its units.";
            }
            {
              assertion = isList command && command != [ ] && all (matches "[^\n]+") command;
              message = "${prefix}.scheduled.${job}.command must be a non-empty list of the arguments of a management command, such as [ \"clearsessions\" ], got ${show command}.";
            }
            {
              assertion = matches "[^\n]+" (options.onCalendar or null);
              message = "${prefix}.scheduled.${job}.onCalendar must be a systemd calendar event such as \"daily\" or \"*-*-* 03:00:00\", got ${show (options.onCalendar or null)}.";
            }
          ]
        ) (attrNames scheduled)
      );

  names = attrNames sites;

  # Owners of every Caddy address; a key held by two sites makes Caddy reject the whole configuration.
  addressOwners = concatLists (
    map (
      name:
      let
        site = sites.${name};
        hosts = filter isString ([ (site.hostname or null) ] ++ (if isList site.aliases then site.aliases else [ ]));
        urls = filter (url: url != null) (
          map addresses.parseUrl (filter isString [
            site.staticUrl
            site.mediaUrl
          ])
        );
        keys = unique (map (addresses.hostKey site.port) hosts ++ map addresses.urlKey urls);
      in
      if isInt site.port then map (key: { inherit key name; }) keys else [ ]
    ) names
  );
  sharedAddresses = filter (group: length group > 1) (
    attrValues (groupBy (owner: owner.key) addressOwners)
  );

  # The local database and its role are named after the site user, so two such sites cannot share a user.
  localDatabaseUsers = groupBy (name: toString sites.${name}.user) (
    filter (name: sites.${name}.databaseUrl == null) names
  );
  sharedDatabaseUsers = filter (user: length localDatabaseUsers.${user} > 1) (attrNames localDatabaseUsers);

  # Every site creates its user with its group as primary group.
  groupsOfUsers = groupBy (name: toString sites.${name}.user) names;
  usersWithSeveralGroups = filter (
    user: length (unique (map (name: sites.${name}.group) groupsOfUsers.${user})) > 1
  ) (attrNames groupsOfUsers);

  sitesOf = owners: concatStringsSep " and " (map (name: "django.sites.${name}") owners);
in
concatLists (map (name: siteChecks name sites.${name}) names)
++ map (group: {
  assertion = false;
  message = "${sitesOf (map (owner: owner.name) group)} are all served at ${(head group).key}: every host name and port pair (hostname, aliases, full staticUrl/mediaUrl) may belong to one site only.";
}) sharedAddresses
++ map (user: {
  assertion = false;
  message = "${sitesOf localDatabaseUsers.${user}} share the user ${show user} and a local database: the database and its owner role are named after the site user, so give each site its own user (or set databaseUrl).";
}) sharedDatabaseUsers
++ map (user: {
  assertion = false;
  message = "${sitesOf groupsOfUsers.${user}} share the user ${show user} but not its group: sites that share a user must set the same group.";
}) usersWithSeveralGroups
