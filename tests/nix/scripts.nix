# The scripts of one site, built with /bin/sh so tests can run them: nix-build -A envWrapper etc.
{
  # Site directory (the secret key and an extra environment file live there).
  baseDir,
  # Site user.
  user,
  # Stands in for the Python interpreter: any executable taking `-m django <arguments>`.
  python,
}:
let
  writeScript = (import ./write-script.nix).runnable;

  definitions = import ../../nix/sites/definitions.nix {
    name = "scripted";
    inherit python writeScript;
    path = "/usr/sbin:/usr/bin:/sbin:/bin";
    site = import ../../nix/sites/defaults.nix "scripted" // {
      hostname = "scripted.test";
      staticFilesPackage = "/nix/store/00000000000000000000000000000000-scripted-static";
      settingsModule = "scripted.settings";
      wsgiModule = "scripted.wsgi";
      inherit baseDir user;
      extraEnv = {
        QUOTED = "it's \"quoted\" $HOME `id`";
        OVERRIDDEN = "from extraEnv";
      };
      extraEnvFiles = [ "${baseDir}/extra.env" ];
    };
  };
in
{
  inherit (definitions) envWrapper manageScript secretKeyScript;
}
