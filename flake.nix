{
  description = "djdeploy: Django sites on NixOS, served by gunicorn behind Caddy with PostgreSQL";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = build: nixpkgs.lib.genAttrs systems (system: build nixpkgs.legacyPackages.${system});

      exampleRelease = builtins.head (
        builtins.match ".*RELEASE = \"([^\"]+)\".*" (builtins.readFile ./example/example_site/release.py)
      );
    in
    {
      # django.sites.<instance>
      nixosModules.django = ./nix/module.nix;
      nixosModules.default = self.nixosModules.django;

      # mkSite, mkStaticFiles and the requirement helpers they use.
      lib = import ./nix/flake-lib.nix;

      packages = forAllSystems (pkgs: rec {
        example-site = self.lib.mkSite {
          inherit pkgs;
          src = ./example;
          # The version is dynamic in pyproject.toml (read from the package by setuptools).
          version = exampleRelease;
          # The example needs Django 5.2; nixpkgs' `django` may still be the 4.2 LTS.
          packageNames.django = "django_5";
        };
        example-static = self.lib.mkStaticFiles {
          inherit pkgs;
          site = example-site;
          settingsModule = "example_site.config.settings.base";
        };
        default = example-site;
      });
    };
}
