# Packaging helpers for Django projects, exposed as the flake's `lib`: they build the `package` and the
# `staticFilesPackage` of `django.sites.<name>` with nixpkgs. Each function takes the `pkgs` (or the `python`)
# to build with.
let
  inherit (builtins)
    filter
    genList
    head
    isString
    map
    match
    readFile
    removeAttrs
    replaceStrings
    split
    stringLength
    substring
    ;

  characters = text: genList (index: substring index 1 text) (stringLength text);
  toLower = replaceStrings (characters "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (
    characters "abcdefghijklmnopqrstuvwxyz"
  );
in
rec {
  # "psycopg[binary]>=3.1; python_version >= '3.11'" -> "psycopg". Names are normalised (lower case, "-"
  # for "_" and "."), which is how nixpkgs names most Python packages.
  requirementName =
    requirement:
    let
      parts = match "[[:space:]]*([A-Za-z0-9][A-Za-z0-9._-]*).*" requirement;
    in
    if parts == null then
      throw "\"${requirement}\" is not a Python requirement such as \"django>=5.2\"."
    else
      toLower (replaceStrings [ "_" "." ] [ "-" "-" ] (head parts));

  # The requirements of a requirements.txt file, without comments, blank lines and pip options.
  requirementsFromFile =
    file:
    filter (line: isString line && match "[[:space:]]*([#-].*)?" line == null) (split "\n" (readFile file));

  # nixpkgs Python packages for a list of requirements. Versions are not looked at: the packages are those of
  # the Python package set. `packageNames` maps a requirement name to another attribute name, such as
  # { django = "django_5"; }.
  pythonPackagesFor =
    {
      python,
      requirements,
      packageNames ? { },
    }:
    map (
      requirement:
      let
        name = requirementName requirement;
        attribute = packageNames.${name} or name;
      in
      python.pkgs.${attribute} or (throw ''
        The Python requirement "${requirement}" has no package `${attribute}` in the package set of
        ${python.name or "this Python"}: map it with packageNames.${name} = "<attribute>", or pass
        `dependencies` yourself.
      '')
    ) requirements;

  # The Django project in `src` (a directory with a pyproject.toml) as a Python application, with the
  # `python` passthru the NixOS module needs. Name, version, dependencies and build system come from
  # pyproject.toml unless given; any other argument goes to buildPythonApplication as it is.
  # Version pins are relaxed (pythonRelaxDeps): nixpkgs has one version of each package.
  mkSite =
    {
      pkgs,
      src,
      python ? pkgs.python3,
      pyprojectToml ? builtins.fromTOML (
        readFile (if builtins.isPath src then src + "/pyproject.toml" else "${src}/pyproject.toml")
      ),
      pname ? pyprojectToml.project.name,
      version ? pyprojectToml.project.version or "0",
      packageNames ? { },
      dependencies ? pythonPackagesFor {
        inherit python packageNames;
        requirements = pyprojectToml.project.dependencies or [ ];
      },
      build-system ? pythonPackagesFor {
        inherit python packageNames;
        requirements = pyprojectToml.build-system.requires or [ "setuptools" ];
      },
      ...
    }@args:
    python.pkgs.buildPythonApplication (
      {
        pythonRelaxDeps = true;
      }
      // removeAttrs args [
        "pkgs"
        "python"
        "pyprojectToml"
        "packageNames"
      ]
      // {
        inherit
          pname
          version
          src
          dependencies
          build-system
          ;
        pyproject = true;
        passthru = (args.passthru or { }) // {
          inherit python;
        };
      }
    );

  # The static files of a site: the output of `collectstatic`, run at build time with `settingsModule`
  # (one that needs no database or secret, such as the base settings). `environment` adds or overrides
  # variables the settings read. `site` is the project's package or, as for the module's `pythonEnv`, a ready
  # environment (uv2nix, poetry2nix) given as `pythonEnv`.
  # byContent: return collectstatic's output copied to a store path named by its content alone (not a
  # derivation), so that a release that changed no static file keeps the same path and a deploy copies none
  # of them. collectstatic runs with the site's code, so without it every release makes a new path of every
  # static file. It needs Nix 2.0 or later (builtins.path) with import from derivation allowed (the default,
  # allow-import-from-derivation): evaluation builds the static files first, so the evaluating machine must
  # be able to build for the server's platform.
  mkStaticFiles =
    {
      pkgs,
      site ? pythonEnv,
      settingsModule,
      pythonEnv ? null,
      python ? site.python or site.pythonModule,
      extraPackages ? [ ],
      environment ? { },
      byContent ? false,
    }:
    let
      environmentOfSite =
        if pythonEnv != null then
          pythonEnv
        else
          python.withPackages (_: [ (python.pkgs.toPythonModule site) ] ++ extraPackages);
      name = "${site.pname or "django-site"}-static";
      collected =
        pkgs.runCommand "${name}-${site.version or "0"}"
          (
            {
              DJANGO_SETTINGS_MODULE = settingsModule;
              SECRET_KEY = "collectstatic";
              DATABASE_URL = "sqlite://:memory:";
              MEDIA_ROOT = "/dev/null";
              ALLOWED_HOSTS = "localhost";
            }
            // environment
          )
          ''
            export STATIC_ROOT="$out"
            ${environmentOfSite}/bin/python -m django collectstatic --noinput
          '';
    in
    if byContent then
      builtins.path {
        # Without the version: the name is part of the path.
        inherit name;
        path = collected;
      }
    else
      collected;
}
