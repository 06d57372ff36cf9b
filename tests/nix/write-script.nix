# Stand-ins for pkgs.writeShellScript in the evaluation tests, built with the host's /bin/sh.
let
  writer =
    builderScript: name: text:
    derivation {
      inherit name text;
      system = builtins.currentSystem;
      builder = "/bin/sh";
      args = [
        "-c"
        builderScript
      ];
      PATH = "/usr/bin:/bin";
    };
in
{
  # For cases that only read the text: building it fails.
  unbuilt = writer "exit 1";
  # A runnable script, as pkgs.writeShellScript makes it.
  runnable = writer ''printf '#!/bin/sh\n%s' "$text" >"$out" && chmod 0555 "$out"'';
}
