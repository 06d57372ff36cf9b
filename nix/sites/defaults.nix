# Default option values of one site. The NixOS module uses them as its option defaults and the lab merges a
# site's own settings over them (`defaults name // site`), so both targets start from the same values.
# Pure builtins: the lab evaluates this file without nixpkgs.
#
# `settingsModule`, `wsgiModule` and `asgiModule` are not here: their defaults are derived from the package name, which only
# the NixOS module knows (`<pname>.config.settings.base`, `<pname>.config.wsgi`).
instanceName: {
  aliases = [ ];
  port = 443;
  auth = null;
  mediaUrl = "/media/";
  staticUrl = "/static/";
  nbWorkers = 1;
  server = "gunicorn";
  workerClass = "gevent";
  extraEnv = { };
  extraEnvFiles = [ ];
  disableACME = false;
  user = instanceName;
  group = instanceName;
  databaseUrl = null;
  baseDir = "/var/www/${instanceName}";
  healthCheckPath = "/";
  scheduled = { };
}
