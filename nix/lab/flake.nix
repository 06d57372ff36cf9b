# The lab's hosts as a flake: nixosConfigurations.lab1..lab8, the systems nix/lab/hosts.nix builds, so that
# `build: {flake: ...}` deploys can be tried on the lab. No inputs: the lab has no nixpkgs, and a flake
# without inputs evaluates offline. Its source is the repository's git tree (tracked files only), which holds
# the example project and nix/sites that these systems are built from.
{
  description = "djdeploy lab hosts lab1..lab8, each running the example site";

  outputs =
    { self }:
    let
      # A flake cannot ask which machine evaluates it; lab hosts are containers of the building machine.
      system = "x86_64-linux";
      hosts = import ./hosts.nix { packages = import ./packages.nix { inherit system; }; };
    in
    {
      nixosConfigurations = builtins.mapAttrs (_: toplevel: { config.system.build.toplevel = toplevel; }) hosts;
    };
}
