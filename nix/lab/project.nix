# The stable entry point for rehearsing one's own Django project on the lab: lab hosts lab1..lab8, each
# running one site built from the project's directory and a pinned requirements file. `djdeploy lab.rehearse`
# calls it from lab.yaml; a Nix file of one's own may import it too and pass `adjustSite` for anything else.
{
  # The site's instance name: its user, unit and database names.
  name,
  # The project's directory (a path, or an absolute path as a string).
  src,
  # A requirements file of exact pins (`name==version` lines).
  requirements,
  settingsModule,
  wsgiModule,
  hostname,
  workerClass ? "gevent",
  extraEnv ? { },
  extraEnvFiles ? [ ],
  healthCheckPath ? "/",
  # site -> site: any other django.sites option (aliases, scheduled, auth, ...).
  adjustSite ? (site: site),
  # The hosts' Python: 3.11 on the lab's Debian 12 image, or 3.13 with hostRoot the root of its Debian 13
  # image (as lab.rehearse chooses them from the project), e.g. "/var/cache/djdeploy-lab/image-<hash>".
  pythonVersion ? "3.11",
  hostRoot ? null,
  packages ? import ./packages.nix { inherit pythonVersion hostRoot; },
}:
let
  asPath = value: if builtins.isString value then /. + value else value;
  project = packages.projectFrom {
    inherit
      name
      settingsModule
      workerClass
      extraEnv
      ;
    src = asPath src;
    requirements = asPath requirements;
  };
  site = adjustSite {
    package = project.site;
    staticFilesPackage = project.static;
    inherit
      hostname
      settingsModule
      wsgiModule
      workerClass
      extraEnv
      extraEnvFiles
      healthCheckPath
      ;
    # Lab hosts cannot reach an ACME server: Caddy's own CA signs the certificate.
    disableACME = true;
  };
  host = index: {
    name = "lab${toString index}";
    value = import ./system.nix {
      hostName = "lab${toString index}";
      inherit packages;
      sites.${name} = site;
    };
  };
in
builtins.listToAttrs (map host [ 1 2 3 4 5 6 7 8 ])
