"""lab.up, lab.down, lab.reboot and lab.status: bring hosts up in parallel, reboot one, tear down, report."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from djdeploy.errors import DjdeployError
from djdeploy.lab import binary_cache, image, machine, network
from djdeploy.lab.layout import MAX_HOSTS, LabHost, LabLayout
from djdeploy.remote.ssh import Remote

# The lab's hosts' systems, each running the example site (nix/lab/hosts.nix in the repository).
LAB_SYSTEMS = Path(__file__).resolve().parents[2] / "nix" / "lab" / "hosts.nix"
# The lab's builds reach no binary cache (waiting for one would only slow them), and use every core as
# NixOS's default max-jobs does (Nix's own default is one build at a time).
LAB_NIX_OPTIONS = {"substituters": "", "max-jobs": "auto"}

REQUIRED_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "nix-build": "nix-bin",
}


@dataclass(frozen=True)
class LabHostState:
    """A lab host as lab.status lists it (not ops.status: the lab's own view of its machines)."""

    name: str
    address: str
    state: str
    generation: str


def check_host_count(count: int) -> None:
    if not 1 <= count <= MAX_HOSTS:
        raise DjdeployError(
            f"--hosts {count} is out of range: the lab runs 1 to {MAX_HOSTS} hosts (lab1..lab{MAX_HOSTS}). "
            f"Run `djdeploy lab.up --hosts N` with N from 1 to {MAX_HOSTS}."
        )


def check_can_run() -> None:
    """Refuse early, before anything is made, when the lab cannot work on this machine."""
    if os.geteuid() != 0:
        raise DjdeployError(
            "The lab needs root: it mounts overlays, creates network namespaces and boots containers. "
            "Run the lab tasks as root, e.g. `sudo djdeploy lab.up`."
        )
    missing = sorted({package for tool, package in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    image.require_image_tools()
    image.require_host_python()
    if missing:
        raise DjdeployError(
            f"The lab needs packages that are not installed: {', '.join(missing)}. "
            f"Install them with `apt-get install {' '.join(missing)}` and run the task again."
        )


def up(
    layout: LabLayout,
    count: int,
    console: Console,
    recipe: image.ImageRecipe = image.DEBIAN_12,
    *,
    with_cache: bool = False,
) -> list[LabHost]:
    """Make sure lab1..lab<count> are running on the recipe's image; hosts already running on it are kept
    as they are, those running on another are booted anew on it. With the cache (asked for now, or by an
    earlier lab.up that lab.down has not undone) the hosts substitute from it."""
    check_host_count(count)
    check_can_run()
    network.guard(layout)
    clean_stale(layout, console)
    lab_image = image.ensure_image(layout, console, recipe)
    machine.ensure_client_key(layout)
    wanted = [layout.host(index) for index in range(1, count + 1)]
    for host in wanted:
        if machine.running(layout, host) and machine.image_of(host) != lab_image:
            console.print(
                f"{host.name} runs another image than {recipe.release}'s (Python {recipe.python_version}): "
                "booting it anew on that one"
            )
            machine.remove(layout, host)
    missing = [host for host in wanted if not machine.running(layout, host)]
    network.create_lan(layout)
    with (
        console.status(f"Booting {', '.join(h.name for h in missing) or 'nothing'}"),
        ThreadPoolExecutor(max_workers=MAX_HOSTS) as pool,
    ):
        list(pool.map(lambda host: _bring_up(layout, host, lab_image), missing))
    if with_cache or binary_cache.configured(layout):
        with console.status("Starting the lab's binary cache"):
            binary_cache.ensure(layout)
        for host in _known_hosts(layout):
            binary_cache.configure_host(layout, host)
    write_inventory(layout)
    for host in missing:
        console.print(f"[green]up[/] {host.name} at {host.address}")
    return wanted


def _bring_up(layout: LabLayout, host: LabHost, lab_image: Path) -> None:
    try:
        machine.remove(layout, host)
        key_line = machine.prepare(layout, host, lab_image)
        _record_host_key(layout, host, key_line)
        pid = machine.boot(layout, host)
        machine.wait_until_running(layout, host, pid)
    except BaseException:
        machine.remove(layout, host)
        raise


_known_hosts_lock = threading.Lock()


def _record_host_key(layout: LabLayout, host: LabHost, key_line: str) -> None:
    with _known_hosts_lock:
        _replace_host_key(layout, host, key_line)


def _replace_host_key(layout: LabLayout, host: LabHost, key_line: str) -> None:
    lines = []
    if layout.known_hosts.exists():
        lines = [
            line
            for line in layout.known_hosts.read_text().splitlines()
            if line.split(" ", 1)[0] != host.address
        ]
    lines.append(key_line)
    layout.known_hosts.write_text("\n".join(lines) + "\n")


def down(layout: LabLayout, console: Console) -> None:
    """Power every lab host off and remove namespaces, veths, mounts, processes and every file of the lab's
    state: hosts, inventories (the rehearsed projects' too), SSH keys."""
    check_can_run()
    hosts = _known_hosts(layout)
    for host in hosts:
        machine.remove(layout, host)
        console.print(f"[yellow]down[/] {host.name}")
    _remove_networks(layout, keep=set())
    binary_cache.stop(layout)
    network.remove_lan(layout)
    network.unguard(layout)
    shutil.rmtree(layout.projects_dir, ignore_errors=True)
    for path in (
        layout.inventory,
        layout.known_hosts,
        layout.client_key,
        layout.client_key.with_suffix(".pub"),
    ):
        path.unlink(missing_ok=True)
    # Each host's own directory went with it; what is left of the state directory is what others put there.
    for directory in (layout.hosts_dir, layout.state_dir):
        with contextlib.suppress(OSError):  # not there, or not empty
            directory.rmdir()


def reboot(layout: LabLayout, name: str, console: Console) -> None:
    """Power a lab host off and boot it again, keeping its disk (a host powered off is booted)."""
    check_can_run()
    # A host has a disk while its overlay root is mounted, from lab.up to lab.down.
    with_disk = {host.name: host for host in _known_hosts(layout) if host.root.is_mount()}
    host = with_disk.get(name)
    if host is None:
        raise DjdeployError(
            f"There is no lab host {name} to reboot (lab hosts: {', '.join(sorted(with_disk)) or 'none'}). "
            "Start hosts with `djdeploy lab.up --hosts N`."
        )
    with console.status(f"Rebooting {name}"):
        machine.reboot(layout, host)
    console.print(f"[green]rebooted[/] {name} at {host.address}")


def clean_stale(layout: LabLayout, console: Console) -> None:
    """Remove what a crashed or killed run left: hosts whose container is gone, stray namespaces and links."""
    for host in _known_hosts(layout):
        if not machine.running(layout, host):
            console.print(f"Cleaning up what a previous run left of {host.name}")
            machine.remove(layout, host)
    running_indexes = {host.index for host in _known_hosts(layout)}
    _remove_networks(layout, keep=running_indexes)


def _remove_networks(layout: LabLayout, keep: set[int]) -> None:
    """Remove this lab's namespaces and links of hosts not in keep."""
    stray = set(network.lab_namespaces(layout).values()) | set(network.lab_links(layout).values())
    for index in sorted(stray - keep):
        network.remove(layout.host(index))


def _known_hosts(layout: LabLayout) -> list[LabHost]:
    if not layout.hosts_dir.exists():
        return []
    hosts = []
    for directory in sorted(layout.hosts_dir.iterdir()):
        index = directory.name.removeprefix("lab")
        if directory.name.startswith("lab") and index.isdigit():
            hosts.append(layout.host(int(index)))
    return hosts


def status(layout: LabLayout) -> list[LabHostState]:
    """Each lab host with its address, state and current system generation, queried in parallel."""
    hosts = _known_hosts(layout)
    with ThreadPoolExecutor(max_workers=MAX_HOSTS) as pool:
        return list(pool.map(lambda host: _host_state(layout, host), hosts))


def _host_state(layout: LabLayout, host: LabHost) -> LabHostState:
    if not machine.running(layout, host):
        return LabHostState(host.name, host.address, "stopped", "-")
    try:
        with Remote(machine.ssh_target(layout, host)) as remote:
            state = remote.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            link = remote.run(["readlink", "/nix/var/nix/profiles/system"], check=False).stdout.strip()
    except DjdeployError as exc:
        return LabHostState(host.name, host.address, f"unreachable: {exc.message}", "-")
    generation = link.removeprefix("system-").removesuffix("-link") if link else "none"
    return LabHostState(host.name, host.address, state, generation)


def write_inventory(layout: LabLayout) -> None:
    """The inventory through which later tasks reach the lab hosts as --host labN."""
    hosts = {
        host.name: {
            "address": host.address,
            "build": {"file": str(LAB_SYSTEMS), "attribute": host.name},
        }
        for host in _known_hosts(layout)
        if machine.running(layout, host)
    }
    inventory = {"defaults": inventory_defaults(layout, "example"), "hosts": hosts}
    layout.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))


def inventory_defaults(layout: LabLayout, site: str) -> dict[str, object]:
    """The `defaults` of an inventory of lab hosts that run site: the lab's SSH key and host keys, and the
    lab's binary cache while it runs."""
    defaults: dict[str, object] = {
        "ssh": {
            "user": "root",
            "port": 22,
            "known_hosts": str(layout.known_hosts),
            "identity": str(layout.client_key),
        },
        "build": {"nix_options": LAB_NIX_OPTIONS},
        "sites": [site],
        "tags": ["lab"],
    }
    if binary_cache.running(layout):
        defaults["cache"] = binary_cache.inventory_section(layout)
    return defaults
