"""Settings modules: `base` (every environment) and `prod` (HTTPS behind Caddy)."""
