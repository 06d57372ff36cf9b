# A Caddyfile with every kind of block the site definitions write, for `caddy validate`.
{
  # Where the blocks log (validation opens the files).
  logDir,
  # Any existing directory: the static files of the sites.
  staticRoot,
}:
let
  writeScript = (import ./write-script.nix).unbuilt;
  caddyConfig =
    name: options:
    (import ../../nix/sites/definitions.nix {
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
    }).caddyConfig;
in
builtins.concatStringsSep "\n" [
  (caddyConfig "shop" {
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
  (caddyConfig "news" {
    staticUrl = "https://static.news.test/";
    mediaUrl = "https://static.news.test/media/";
  })
  (caddyConfig "intranet" {
    aliases = [ "wiki.test" ];
    port = 80;
  })
  (caddyConfig "blog" {
    mediaUrl = "http://files.blog.test:8080/uploads/";
  })
]
