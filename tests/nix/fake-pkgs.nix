# Just enough of nixpkgs for evaluating the NixOS module: derivations that are never built, whose names show
# what went into them.
let
  stub =
    name: attrs:
    derivation (
      {
        inherit name;
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [
          "-c"
          "exit 1"
        ];
      }
      // attrs
    );

  pythonPackage =
    name:
    stub name { }
    // {
      pname = name;
      pythonModule = python;
    };

  python = stub "python3-3.12.0" { } // {
    pkgs = {
      # As in nixpkgs: marks a derivation as a module of this interpreter.
      toPythonModule = drv: drv // { pythonModule = python; };
      gunicorn = pythonPackage "gunicorn";
      gevent = pythonPackage "gevent";
      uvicorn = pythonPackage "uvicorn";
      sentry-sdk = pythonPackage "sentry-sdk";
    };
    # As in nixpkgs, derivations that are not modules of this interpreter are left out; the environment's name
    # lists the kept ones, so tests can see them in the paths of the units.
    withPackages =
      select:
      let
        kept = builtins.filter (drv: (drv.pythonModule or null) == python) (select python.pkgs);
      in
      stub "python3-env+${builtins.concatStringsSep "+" (map (drv: drv.pname) kept)}" { };
  };
in
{
  inherit python;

  writeShellScript = name: text: stub name { inherit text; };
  linkFarm = name: entries: stub name { } // { inherit entries; };
  coreutils = stub "coreutils-9.5" { };
  util-linux = stub "util-linux-2.40" { };

  # A project packaged with buildPythonApplication: a `python` passthru, but no module of it.
  mysiteApplication =
    stub "mysite-1.0" { }
    // {
      pname = "mysite";
      version = "1.0";
      inherit python;
    };
  # A project packaged with buildPythonPackage: a module, without `python` passthru.
  blogPackage =
    stub "django-blog-2.0" { }
    // {
      pname = "django-blog";
      version = "2.0";
      pythonModule = python;
    };
  mysiteStatic = stub "mysite-static" { };

  # What uv2nix's mkVirtualEnv builds (pyproject.nix): a plain derivation holding a virtual environment, with
  # no passthru that names its Python.
  uvVirtualEnv = stub "mysite-env" { };
  # What poetry2nix's mkPoetryEnv builds: a python.withPackages environment, whose `python` passthru is the
  # bare interpreter (so it is no package to wrap again).
  poetryEnv =
    stub "python3-3.12.0-env" { }
    // {
      inherit python;
      interpreter = "/nix/store/00000000000000000000000000000000-python3-3.12.0-env/bin/python3.12";
    };
}
