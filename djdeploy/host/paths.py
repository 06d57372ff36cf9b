"""Where djdeploy keeps its state on a deployed host, and where a system describes its sites."""

SYSTEM_PROFILE = "/nix/var/nix/profiles/system"
CURRENT_SYSTEM = "/run/current-system"
# Written by the NixOS module (environment.etc) and by the lab system: one entry per site.
SITES_MANIFEST = "etc/djdeploy/sites.json"
# A directory, so that taking the lock is one atomic mkdir; owner.json inside says who holds it.
LOCK_DIR = "/run/djdeploy/lock"
LOCK_OWNER = f"{LOCK_DIR}/owner.json"
# One JSON object per line, a host.system.DeployRecord.
DEPLOY_LOG = "/var/lib/djdeploy/deploys.jsonl"
# Per-deploy files of the activation supervisor that runs on the host under systemd-run.
ACTIVATION_DIR = "/run/djdeploy/activations"
# The sites' database dumps, one directory per site, readable by root only (never in the Nix store).
BACKUP_DIR = "/var/backup/djdeploy"
# Each release's list of migration files (host.migration_files), kept across reboots: a store path's list
# never changes. A list goes when its store path has gone.
MIGRATION_FILES = "/var/lib/djdeploy/migration-files"
# The status task's answers that cost a Django start (each site's migration plan), kept across reboots.
STATUS_CACHE = "/var/lib/djdeploy/status-cache"
# Every activation supervisor of the host holds this file's flock while it changes what the host runs.
SWITCH_LOCK = "/run/djdeploy/switch.lock"
