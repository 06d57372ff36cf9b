# A Caddyfile with every kind of block the site definitions write, for `caddy validate`.
{
  # Where the blocks log (validation opens the files).
  logDir,
  # Any existing directory: the static files of the sites.
  staticRoot,
  # The virtual hosts of the sites as one attribute set, rather than their Caddyfile text.
  virtualHostsOnly ? false,
}:
let
  writeScript = (import ./write-script.nix).unbuilt;
  definitions =
    name: options:
    import ../../nix/sites/definitions.nix {
      inherit name writeScript;
      python = "/usr/bin/python3";
      caddyLogDir = logDir;
      site =
        import ../../nix/sites/defaults.nix name
        // {
          hostname = "${name}.test";
          staticFilesPackage = staticRoot;
          settingsModule = "${name}.settings";
          wsgiModule = "${name}.wsgi";
          disableACME = true;
        }
        // options;
    };
  sites = [
    (definitions "shop" {
      aliases = [
        "www.shop.test"
        "shop.example"
      ];
      port = 8443;
      auth = {
        user = "jane";
        # caddy hash-password --plaintext foobar
        passwordHash = "$2a$14$umuqX95DrKUOin8T6oS./O6FrwP8adc9IP.3WEB0Q5guU4J6yU5Y2";
      };
      mediaUrl = "https://media.shop.test/files/";
    })
    (definitions "news" {
      staticUrl = "https://static.news.test/";
      mediaUrl = "https://static.news.test/media/";
    })
    (definitions "intranet" {
      aliases = [ "wiki.test" ];
      port = 80;
    })
    (definitions "blog" {
      mediaUrl = "http://files.blog.test:8080/uploads/";
    })
  ];
  virtualHosts = builtins.foldl' (all: site: all // site.virtualHosts) { } sites;
in
if virtualHostsOnly then virtualHosts else (import ../../nix/sites/caddyfile.nix).render virtualHosts
