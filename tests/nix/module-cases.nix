# Sites evaluated through the NixOS module; tests/test_nix_module.py checks what each case produces.
let
  evalModule = import ./eval-module.nix;
  evalSites = sites: evalModule { inherit sites; };
  pkgs = import ./fake-pkgs.nix;

  mysite = {
    package = pkgs.mysiteApplication;
    staticFilesPackage = pkgs.mysiteStatic;
    hostname = "mysite.test";
  };
  hash = "$2a$14$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0";
in
{
  defaults = evalSites { mysite_prod = mysite; };

  full = evalSites {
    shop = mysite // {
      hostname = "shop.test";
      aliases = [
        "www.shop.test"
        "shop.example"
      ];
      port = 8443;
      auth = {
        user = "jane";
        passwordHash = hash;
      };
      disableACME = true;
      nbWorkers = 3;
      workerClass = "sync";
      settingsModule = "shop.settings.prod";
      wsgiModule = "shop.wsgi:app";
      extraEnv.SENTRY_ENVIRONMENT = "production";
      extraEnvFiles = [ "/run/secrets/shop.env" ];
      baseDir = "/srv/shop";
    };
  };

  plainHttp = evalSites {
    intranet = mysite // {
      hostname = "intranet.test";
      aliases = [ "wiki.test" ];
      port = 80;
      disableACME = true;
    };
  };

  fullUrls = evalSites {
    news = mysite // {
      hostname = "news.test";
      staticUrl = "https://static.news.test/";
      mediaUrl = "https://static.news.test/media/";
    };
    blog = mysite // {
      hostname = "blog.test";
      mediaUrl = "http://files.blog.test:8080/uploads/";
    };
  };

  # The site user is not named after the instance: database and role follow the user.
  userOverride = evalSites {
    blog = mysite // {
      hostname = "blog.test";
      user = "alice";
      group = "writers";
    };
  };

  externalDatabase = evalSites {
    api = mysite // {
      hostname = "api.test";
      databaseUrl = "postgresql://api@db.example.com/api";
    };
  };

  pythonModulePackage = evalSites {
    blog = mysite // {
      package = pkgs.blogPackage;
      hostname = "blog.test";
    };
  };

  extraPackagesOverride = evalSites {
    mysite = mysite // {
      extraPackages = [ pkgs.python.pkgs.gunicorn ];
    };
  };

  # A configuration's own unit settings on top of the units' sandbox.
  sandboxOverride = evalModule {
    sites.mysite = mysite;
    extraConfig.systemd.services.gunicorn-mysite.serviceConfig = {
      MemoryDenyWriteExecute = false;
      ReadWritePaths = [ "/srv/uploads" ];
      SystemCallFilter = [ "mbind" ];
    };
  };

  # A ready environment, as uv2nix or poetry2nix build it, given as pythonEnv alone.
  uvVirtualEnv = evalSites {
    mysite = {
      pythonEnv = pkgs.uvVirtualEnv;
      staticFilesPackage = pkgs.mysiteStatic;
      hostname = "mysite.test";
      settingsModule = "mysite.settings";
      wsgiModule = "mysite.wsgi";
    };
  };
  poetryEnv = evalSites {
    mysite = mysite // {
      package = pkgs.mysiteApplication;
      pythonEnv = pkgs.poetryEnv;
    };
  };
  # A virtual environment given as the package: it names no Python.
  virtualEnvAsPackage = (evalSites { mysite = mysite // { package = pkgs.uvVirtualEnv; }; }).services;
  noPackage = (evalSites { mysite = removeAttrs mysite [ "package" ]; }).services;

  asgi = evalSites {
    mysite = mysite // {
      server = "gunicorn-uvicorn";
    };
  };

  scheduled = evalSites {
    mysite = mysite // {
      scheduled.clearsessions = {
        command = [ "clearsessions" ];
        onCalendar = "daily";
      };
    };
  };

  # A configuration's own directives for the site's host name, the NixOS way.
  userVirtualHost = evalModule {
    sites.mysite = mysite // {
      aliases = [ "www.mysite.test" ];
    };
    extraConfig.services.caddy.virtualHosts."mysite.test".extraConfig = ''
      encode zstd gzip
      header Strict-Transport-Security "max-age=31536000"
    '';
  };

  # A configuration's own log settings replace the site's log file.
  userLogFormat = evalModule {
    sites.mysite = mysite;
    extraConfig.services.caddy.virtualHosts."mysite.test".logFormat = "output discard\n";
  };

  # The list of files the older module's documentation gives as extraEnv: read as files, with a warning.
  legacyExtraEnvList = evalSites {
    mysite = mysite // {
      extraEnv = [ "/run/secrets/legacy.env" ];
    };
  };

  # Each of these fails exactly the assertions named in the test.
  invalid = builtins.mapAttrs (_: sites: (evalSites sites).failedAssertions) {
    plaintextPassword.mysite = mysite // {
      auth = {
        user = "jane";
        password = "secret";
      };
    };
    notAHash.mysite = mysite // {
      auth = {
        user = "jane";
        passwordHash = "secret";
      };
    };
    aliasIsHostname.mysite = mysite // {
      aliases = [ "mysite.test" ];
    };
    portZero.mysite = mysite // {
      port = 0;
    };
    relativeStaticUrl.mysite = mysite // {
      staticUrl = "static/";
    };
    sameStaticAndMediaUrl.mysite = mysite // {
      staticUrl = "/files/";
      mediaUrl = "/files/";
    };
    staticUrlOnOwnHost.mysite = mysite // {
      staticUrl = "https://mysite.test/static/";
    };
    hostnameWithScheme.mysite = mysite // {
      hostname = "https://mysite.test";
    };
    relativeEnvFile.mysite = mysite // {
      extraEnvFiles = [ "secrets.env" ];
    };
    badEnvName.mysite = mysite // {
      extraEnv."BAD-NAME" = "x";
    };
    sharedHostname = {
      one = mysite;
      two = mysite;
    };
    sharedDatabaseUser = {
      one = mysite // {
        user = "web";
        group = "web";
      };
      two = mysite // {
        hostname = "two.test";
        user = "web";
        group = "web";
      };
    };
  };
}
