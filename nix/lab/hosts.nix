# The lab's hosts lab1..lab8, each running the example site; the lab inventory builds `labN` from here.
{
  packages ? import ./packages.nix { },
  # Another copy of the example project (a changed release, say); null: the repository's example/.
  exampleSource ? null,
}:
let
  example = packages.example;
  site =
    if exampleSource == null then
      example.site
    else
      packages.djangoSite {
        name = "example-site";
        src = packages.siteSource {
          name = "example-site-source";
          path = exampleSource;
        };
        inherit (example) deps;
      };
  exampleSite = {
    package = site;
    staticFilesPackage =
      if exampleSource == null then
        example.static
      else
        packages.staticFiles {
          inherit site;
          settingsModule = "example_site.config.settings.prod";
        };
    hostname = "example.lab";
    aliases = [ "www.example.lab" ];
    settingsModule = "example_site.config.settings.prod";
    wsgiModule = "example_site.config.wsgi";
    healthCheckPath = "/healthz";
    # Lab hosts cannot reach an ACME server: Caddy's own CA signs the certificate.
    disableACME = true;
  };
  host = index: {
    name = "lab${toString index}";
    value = import ./system.nix {
      hostName = "lab${toString index}";
      inherit packages;
      sites.example = exampleSite;
    };
  };
in
builtins.listToAttrs (map host [ 1 2 3 4 5 6 7 8 ])
