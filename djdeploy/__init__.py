"""djdeploy: deploy Django sites to NixOS servers."""
