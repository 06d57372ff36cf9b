"""The lab: Debian hosts booted with systemd-nspawn in their own network namespaces."""
