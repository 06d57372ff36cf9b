# The lab's hosts lab1..lab8, each running the example site; the lab inventory builds `labN` from here.
{
  packages ? import ./packages.nix { },
  # Another copy of the example project (a changed release, say); null: the repository's example/.
  exampleSource ? null,
}:
let
  example = if exampleSource == null then packages.example else packages.exampleFrom exampleSource;
  exampleSite = {
    package = example.site;
    staticFilesPackage = example.static;
    hostname = "example.lab";
    aliases = [ "www.example.lab" ];
    settingsModule = "example_site.config.settings.prod";
    wsgiModule = "example_site.config.wsgi";
    healthCheckPath = "/healthz";
    # Lab hosts cannot reach an ACME server: Caddy's own CA signs the certificate.
    disableACME = true;
    scheduled.clearsessions = {
      command = [ "clearsessions" ];
      onCalendar = "daily";
    };
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
