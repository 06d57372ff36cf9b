# How the host names and URLs of a site become Caddy site addresses. Shared by ./definitions.nix (which writes
# the Caddyfile) and ./assertions.nix (which rejects two sites claiming the same address). Pure builtins.
let
  inherit (builtins) elemAt match toString;
in
rec {
  # "https://cdn.example.com/static/" -> { scheme = "https"; authority = "cdn.example.com"; path = "/static/"; }
  # A path such as "/static/" is no URL: null.
  parseUrl =
    value:
    let
      parts = match "(https?)://([^/]+)(/.*)?" value;
      path = elemAt parts 2;
    in
    if parts == null then
      null
    else
      {
        scheme = elemAt parts 0;
        authority = elemAt parts 1;
        path = if path == null then "/" else path;
      };

  # Caddy serves plain HTTP for an address on port 80 only when it says so (`http://`); on any other port it
  # serves HTTPS with automatic certificates.
  hostAddress =
    port: host:
    if port == 443 then
      host
    else if port == 80 then
      "http://${host}"
    else
      "${host}:${toString port}";

  # Where the alias blocks redirect to: the same scheme and port as the main block.
  canonicalUrl =
    port: host:
    if port == 443 then
      "https://${host}"
    else if port == 80 then
      "http://${host}"
    else
      "https://${host}:${toString port}";

  # Caddy address of the site that serves a full static or media URL.
  urlAddress = url: if url.scheme == "http" then "http://${url.authority}" else url.authority;

  # "host:port", the identity of a Caddy site: two blocks with the same key make Caddy refuse the config.
  hostKey = port: host: "${host}:${toString port}";
  urlKey =
    url:
    if match ".*:[0-9]+" url.authority != null then
      url.authority
    else
      "${url.authority}:${if url.scheme == "http" then "80" else "443"}";
}
