"""Lab hosts with the example site deployed, for end-to-end tests of the tasks that work on deployed hosts.

Each host gets its system from nix/lab/hosts.nix (as the lab inventory's build section says), switched by hand
the way nixos-rebuild does it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from djdeploy import host_paths, inventory, nix
from djdeploy.lab.layout import LabLayout
from djdeploy.ssh import Remote
from tests.lab.helpers import inv


def deploy(host: inventory.Host) -> None:
    """Build the host's system, copy it, make it the profile's new generation and switch to it."""
    assert host.build.file is not None, f"{host.name} has no build file in the inventory"
    system = nix.build(host.build.file, host.build.attribute)
    nix.copy_closure(host.ssh_target, system)
    with Remote(host.ssh_target) as remote:
        remote.run(["nix-env", "-p", host_paths.SYSTEM_PROFILE, "--set", str(system)])
        result = remote.run([f"{system}/bin/switch-to-configuration", "switch"], check=False, timeout=300)
    assert result.ok, f"switching {host.name} failed:\n{result.stdout}{result.stderr}"


@contextlib.contextmanager
def deployed_lab(count: int) -> Iterator[inventory.Inventory]:
    """lab1..lab<count> up with the example site deployed; the lab goes down afterwards."""
    inv("lab.up", "--hosts", str(count))
    try:
        loaded = inventory.load(LabLayout.from_environment().inventory)
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(deploy, loaded.hosts.values()))
        yield loaded
    finally:
        inv("lab.down")
