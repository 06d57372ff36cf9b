# The shared site files and the packaging helpers evaluated with builtins only, as the lab evaluates them (no
# nixpkgs, no lib); tests/test_nix_module.py checks the results.
let
  siteDefaults = import ../../nix/sites/defaults.nix;
  siteDefinitions = import ../../nix/sites/definitions.nix;
  siteAssertions = import ../../nix/sites/assertions.nix;
  flakeLib = import ../../nix/flake-lib.nix;

  writeScript = (import ./write-script.nix).unbuilt;

  site =
    name: options:
    siteDefaults name
    // {
      hostname = "${name}.test";
      staticFilesPackage = "/nix/store/00000000000000000000000000000000-${name}-static";
      settingsModule = "${name}.settings";
      wsgiModule = "${name}.wsgi";
    }
    // options;

  definitions =
    name: options:
    let
      result = siteDefinitions {
        inherit name writeScript;
        site = site name options;
        python = "/opt/python/bin/python";
        path = "/usr/sbin:/usr/bin";
      };
    in
    result
    // {
      envWrapper = result.envWrapper.text;
      manageScript = result.manageScript.text;
      secretKeyScript = result.secretKeyScript.text;
    };

  failedAssertions =
    sites:
    map (check: check.message) (
      builtins.filter (check: !check.assertion) (siteAssertions (builtins.mapAttrs site sites))
    );

  hash = "$2a$14$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0";

  # A python whose buildPythonApplication returns its arguments, so the helpers' choices can be read.
  fakePython = {
    name = "python3-3.12.0";
    withPackages =
      select: "/nix/store/00000000000000000000000000000000-env-${toString (select fakePython.pkgs)}";
    pkgs = {
      buildPythonApplication = arguments: arguments;
      toPythonModule = drv: "module-${drv.pname}";
      django = "django";
      django_5 = "django_5";
      psycopg = "psycopg";
      setuptools = "setuptools";
    };
  };
in
{
  defaults = siteDefaults "mysite";

  minimal = definitions "mysite" { };

  full = definitions "shop" {
    aliases = [ "www.shop.test" ];
    port = 8443;
    auth = {
      user = "jane";
      passwordHash = hash;
    };
    disableACME = true;
    nbWorkers = 4;
    extraEnv = {
      QUOTED = "it's \"quoted\" $HOME";
    };
    extraEnvFiles = [ "/run/secrets/shop.env" ];
    user = "alice";
    group = "writers";
  };

  externalDatabase = definitions "api" { databaseUrl = "postgresql://api@db.example.com/api"; };

  asgi = definitions "shop" {
    server = "gunicorn-uvicorn";
    asgiModule = "shop.asgi";
  };

  scheduled = definitions "shop" {
    scheduled = {
      clearsessions = {
        command = [ "clearsessions" ];
        onCalendar = "daily";
      };
      clean_orders = {
        command = [
          "clean_orders"
          "--note=50% off, $HOME \"quoted\""
        ];
        onCalendar = "*-*-* 03:00:00";
      };
    };
  };

  # The timers as the lab writes them to its hosts.
  labTimerFiles = builtins.mapAttrs (_: (import ../../nix/lab/units.nix).timer) (
    definitions "mysite" {
      scheduled.clearsessions = {
        command = [ "clearsessions" ];
        onCalendar = "daily";
      };
    }
  ).timers;

  # The units as the lab writes them to its hosts.
  labUnitFiles = builtins.mapAttrs (_: (import ../../nix/lab/units.nix).service) (
    definitions "mysite" { }
  ).services;

  # The switch flags and install links as the lab writes them: each service differs in one option.
  labSwitchUnits =
    let
      units = import ../../nix/lab/units.nix;
      services = {
        plain = { wantedBy = [ "multi-user.target" ]; };
        noStop = { stopIfChanged = false; };
        noRestart = { restartIfChanged = false; };
        reload = { reloadIfChanged = true; restartIfChanged = false; };
        notSocketActivated = { notSocketActivated = true; };
        manualOnly = { unitConfig = { X-OnlyManualStart = true; RefuseManualStop = true; }; };
        triggered = { reloadTriggers = [ "a" ]; restartTriggers = [ "b" ]; };
        required = { requiredBy = [ "a.target" ]; upheldBy = [ "b.target" ]; };
      };
    in
    {
      files = builtins.mapAttrs (_: units.service) services;
      links = units.links services;
    };

  legacyExtraEnvList = definitions "old" { extraEnv = [ "/run/secrets/old.env" ]; };

  valid = failedAssertions {
    one = { };
    two.aliases = [ "www.two.test" ];
  };

  # Each case fails with exactly the messages the test expects.
  invalid = builtins.mapAttrs (_: failedAssertions) {
    nullHostname.mysite = {
      hostname = null;
    };
    missingSettings.mysite = {
      settingsModule = null;
      wsgiModule = "not a module";
    };
    badInstanceName."my site" = { };
    hostnameWithPath.mysite = {
      hostname = "mysite.test/app";
    };
    badAlias.mysite = {
      aliases = [ "http://www.mysite.test" ];
    };
    aliasIsHostname.mysite = {
      aliases = [ "mysite.test" ];
    };
    portOutOfRange.mysite = {
      port = 70000;
    };
    portAsString.mysite = {
      port = "443";
    };
    noWorkers.mysite = {
      nbWorkers = 0;
    };
    badWorkerClass.mysite = {
      workerClass = "";
    };
    relativeMediaUrl.mysite = {
      mediaUrl = "media/";
    };
    staticUrlWithoutSlash.mysite = {
      staticUrl = "https://cdn.test/static";
    };
    sameUrls.mysite = {
      staticUrl = "/files/";
      mediaUrl = "/files/";
    };
    staticUrlOnAlias.mysite = {
      aliases = [ "www.mysite.test" ];
      mediaUrl = "https://www.mysite.test/media/";
    };
    plaintextPassword.mysite = {
      auth = {
        user = "jane";
        password = "secret";
      };
    };
    missingHash.mysite = {
      auth.user = "jane";
    };
    badAuthUser.mysite = {
      auth = {
        user = "jane doe";
        passwordHash = hash;
      };
    };
    authNotAnAttrset.mysite = {
      auth = "jane:secret";
    };
    extraEnvNotAttrs.mysite = {
      extraEnv = "FOO=bar";
    };
    badEnvName.mysite = {
      extraEnv."1ST" = "x";
    };
    relativeEnvFile.mysite = {
      extraEnvFiles = [ "secrets.env" ];
    };
    badServer.mysite = {
      server = "uwsgi";
    };
    asgiWithoutModule.mysite = {
      server = "gunicorn-uvicorn";
    };
    badScheduled.mysite = {
      scheduled = {
        "clear-sessions" = {
          command = [ "clearsessions" ];
          onCalendar = "daily";
        };
        nothing = {
          command = [ ];
          onCalendar = "";
        };
      };
    };
    relativeBaseDir.mysite = {
      baseDir = "www/mysite";
    };
    badUser.mysite = {
      user = "alice smith";
      group = "";
    };
    badDatabaseUrl.mysite = {
      databaseUrl = "db.example.com";
    };
    sharedAlias = {
      one.aliases = [ "www.test" ];
      two.aliases = [ "www.test" ];
    };
    sharedStaticHost = {
      one.staticUrl = "https://static.test/one/";
      two.staticUrl = "https://static.test/two/";
    };
    sharedDatabaseUser = {
      one = {
        user = "web";
        group = "web";
      };
      two = {
        user = "web";
        group = "web";
      };
    };
    sharedUserOtherGroup = {
      one = {
        user = "web";
        group = "one";
        databaseUrl = "postgresql://db.test/one";
      };
      two = {
        user = "web";
        group = "two";
        databaseUrl = "postgresql://db.test/two";
      };
    };
  };

  # What the lab may hand over: a site without the options that have no default.
  missingMandatory = map (check: check.message) (
    builtins.filter (check: !check.assertion) (
      siteAssertions {
        mysite = siteDefaults "mysite";
      }
    )
  );

  flakeLib = {
    requirementNames = map flakeLib.requirementName [
      "Django>=5.2,<5.3"
      "psycopg[binary]>=3.1"
      "zope.interface==8.7"
      "typing_extensions; python_version < '3.12'"
    ];
    exampleRequirements = map flakeLib.requirementName (
      flakeLib.requirementsFromFile ../../example/requirements.txt
    );
    site =
      let
        arguments = flakeLib.mkSite {
          pkgs = { };
          python = fakePython;
          src = ../../example;
          version = "1.0.0";
          packageNames.django = "django_5";
          pythonImportsCheck = [ "example_site" ];
        };
      in
      {
        inherit (arguments)
          pname
          version
          pyproject
          dependencies
          build-system
          pythonRelaxDeps
          pythonImportsCheck
          ;
        passthruPython = arguments.passthru.python.name;
      };
    static = flakeLib.mkStaticFiles {
      pkgs.runCommand = name: environment: script: { inherit name environment script; };
      site = {
        pname = "example-site";
        version = "1.0.0";
        python = fakePython;
      };
      settingsModule = "example_site.config.settings.base";
      environment.SITE_RELEASE = "test";
    };
    staticOfVirtualEnv = flakeLib.mkStaticFiles {
      pkgs.runCommand = name: environment: script: { inherit name environment script; };
      pythonEnv = {
        name = "mysite-env";
        outPath = "/nix/store/00000000000000000000000000000000-mysite-env";
      };
      settingsModule = "mysite.settings";
    };
  };
}
