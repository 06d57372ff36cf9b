# Lab systems for the end-to-end tests of the site definitions: the example site (with an alias) and a
# second site behind basic auth, in variants that change the site's code or drop the second site.
{
  # A copy of example/ with another release, for "a second build of the site"; null: example/ itself.
  exampleSource ? null,
  withGuardedSite ? "true",
  # bcrypt hash of the guarded site's password.
  passwordHash ? "",
  # A module that does not exist makes gunicorn fail to start.
  wsgiModule ? "example_site.config.wsgi",
  # A path that answers 404 makes the deploy's health check fail.
  healthCheckPath ? "/healthz",
  # 80 serves the sites over plain HTTP.
  port ? 443,
  # "gunicorn-uvicorn" serves them as ASGI.
  server ? "gunicorn",
  # "nixos-default" removes the module's `stopIfChanged = false` from gunicorn-example, leaving NixOS's
  # default (true): switch-to-configuration then stops its socket too during a deploy.
  gunicornStopIfChanged ? "module",
}:
let
  packages = import ../../nix/lab/packages.nix { };
  example = if exampleSource == null then packages.example else packages.exampleFrom exampleSource;
  common = {
    package = example.site;
    staticFilesPackage = example.static;
    settingsModule = "example_site.config.settings.prod";
    inherit
      wsgiModule
      healthCheckPath
      port
      server
      ;
    asgiModule = "example_site.config.asgi";
    disableACME = true;
  };
in
import ../../nix/lab/system.nix {
  hostName = "lab1";
  inherit packages;
  adjustServices =
    services:
    if gunicornStopIfChanged == "nixos-default" then
      services // { gunicorn-example = builtins.removeAttrs services.gunicorn-example [ "stopIfChanged" ]; }
    else
      services;
  sites = {
    example = common // {
      hostname = "example.lab";
      aliases = [ "www.example.lab" ];
    };
  }
  // (
    if withGuardedSite == "true" then
      {
        guarded = common // {
          hostname = "guarded.lab";
          auth = {
            user = "jane";
            inherit passwordHash;
          };
        };
      }
    else
      { }
  );
}
