"""What a deploy would do, for --dry-run: the paths it would copy, the units it would change, the migrations
it would apply."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rich.console import Console

from djdeploy.deploy import migrations, nix
from djdeploy.deploy.transfer import missing_paths
from djdeploy.host import paths as host_paths
from djdeploy.host import sites
from djdeploy.host import system as host_system
from djdeploy.inventory import Host
from djdeploy.remote.ssh import Remote


def show_plan(
    remote: Remote,
    host: Host,
    system: Path,
    facts: host_system.Facts,
    console: Console,
    *,
    substitute_on_destination: bool = False,
) -> None:
    """What a deploy would do: the paths it would copy, the units it would start, restart or stop, and each
    site's migrations, asked of the new release's code on the host (which needs its closure copied there;
    nothing is switched)."""
    missing = missing_paths(remote, system)
    size = sum(path.nar_size for path in missing) / 1e6
    console.print(f"[bold]{host.name}[/]: would copy {len(missing)} paths, {size:.1f} MB")
    for path in sorted(missing, key=lambda p: -p.nar_size)[:15]:
        console.print(f"  + {path.name} [dim]{path.nar_size / 1e6:.1f} MB[/]")
    old_units = _remote_unit_hashes(remote)
    new_units = _local_unit_hashes(system)
    for verb, names in (
        ("start", sorted(set(new_units) - set(old_units))),
        (
            "restart or reload",
            sorted(n for n in set(new_units) & set(old_units) if new_units[n] != old_units[n]),
        ),
        ("stop", sorted(set(old_units) - set(new_units))),
    ):
        for name in names:
            console.print(f"  would {verb} {name}")
    console.print(f"  from generation {facts.generation_number or 'none'} to {system.name}")
    with_database = [site for site in sites.of_system(system) if site.database is not None]
    if not with_database:
        return
    if missing:
        nix.copy_closure(remote.target, system, substitute_on_destination=substitute_on_destination)
        console.print("  copied the closure to ask the new release for its migrations (nothing switched)")
    for site_plan in migrations.plan_sites(remote, system, with_database):
        for line in migrations.describe(site_plan):
            console.print(f"  {line}")


def _local_unit_hashes(system: Path) -> dict[str, str]:
    directory = system / "etc" / "systemd" / "system"
    if not directory.is_dir():
        return {}
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in directory.iterdir()
        if path.is_file()
    }


def _remote_unit_hashes(remote: Remote) -> dict[str, str]:
    listing = remote.run_shell(
        f"cd {host_paths.CURRENT_SYSTEM}/etc/systemd/system 2>/dev/null && "
        'for unit in *; do [ -f "$unit" ] && sha256sum "$unit"; done; true'
    ).stdout
    return {name: digest for digest, name in (line.split(maxsplit=1) for line in listing.splitlines())}
