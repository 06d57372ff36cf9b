"""Where the lab keeps its files, and the fixed names and addresses of its hosts."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MAX_HOSTS = 8
MAX_INSTANCE = 9
# Where the lab's builds keep the wheels they install (nix/lab/packages.nix reads the same variable).
WHEEL_CACHE_ENV = "DJDEPLOY_LAB_WHEELS"
DEFAULT_WHEEL_CACHE = "/var/cache/djdeploy/wheels"


@dataclass(frozen=True)
class LabLayout:
    """Directories of the lab and the names of its hosts' namespaces, links and addresses.

    Several labs can run side by side on one machine, each with its own instance number
    (DJDEPLOY_LAB_INSTANCE, 0 by default): their names and subnets never overlap.
    """

    cache_dir: Path
    state_dir: Path
    instance: int = 0
    # The wheels the builds install, kept outside the store (DJDEPLOY_LAB_WHEELS), read-only in every host: a
    # host that builds its own system (`build.on`) has no network to download them.
    wheel_cache: Path = Path(DEFAULT_WHEEL_CACHE)

    @classmethod
    def from_environment(cls) -> LabLayout:
        instance_text = os.environ.get("DJDEPLOY_LAB_INSTANCE", "0")
        if not instance_text.isdigit() or int(instance_text) > MAX_INSTANCE:
            raise ValueError(f"DJDEPLOY_LAB_INSTANCE must be a number from 0 to {MAX_INSTANCE}")
        instance = int(instance_text)
        default_state = "/var/lib/djdeploy-lab" + (f"-{instance}" if instance else "")
        return cls(
            cache_dir=Path(os.environ.get("DJDEPLOY_LAB_CACHE", "/var/cache/djdeploy-lab")),
            state_dir=Path(os.environ.get("DJDEPLOY_LAB_STATE", default_state)),
            instance=instance,
            wheel_cache=Path(os.environ.get(WHEEL_CACHE_ENV) or DEFAULT_WHEEL_CACHE),
        )

    @property
    def prefix(self) -> str:
        """Start of the names of this lab's namespaces and links."""
        return "djlab" if self.instance == 0 else f"djlab{self.instance}x"

    @property
    def subnet(self) -> str:
        """First two octets of this lab's addresses: 10.231 for instance 0."""
        return f"10.{231 + self.instance}"

    def index_of_namespace(self, name: str) -> int | None:
        match = re.fullmatch(rf"{re.escape(self.prefix)}-lab(\d+)", name)
        return int(match.group(1)) if match else None

    def index_of_link(self, name: str) -> int | None:
        match = re.fullmatch(rf"{re.escape(self.prefix)}(\d+)", name)
        return int(match.group(1)) if match else None

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    @property
    def projects_dir(self) -> Path:
        """Where lab.rehearse writes each project's pinned requirements, Nix call and inventory."""
        return self.state_dir / "projects"

    @property
    def client_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yaml"

    @property
    def lan_netns(self) -> str:
        """The namespace of the bridge that joins the hosts to each other, as servers share a LAN."""
        return f"{self.prefix}-lan"

    def host(self, index: int) -> LabHost:
        return LabHost(index, self.hosts_dir / f"lab{index}", self.prefix, self.subnet)


@dataclass(frozen=True)
class LabHost:
    """One lab host: lab<index>, in namespace <prefix>-lab<index>, at <subnet>.<index>.2."""

    index: int
    directory: Path
    prefix: str = "djlab"
    subnet: str = "10.231"

    @property
    def name(self) -> str:
        return f"lab{self.index}"

    @property
    def netns(self) -> str:
        return f"{self.prefix}-{self.name}"

    @property
    def host_link(self) -> str:
        return f"{self.prefix}{self.index}"

    @property
    def address(self) -> str:
        return f"{self.subnet}.{self.index}.2"

    @property
    def lan_address(self) -> str:
        """The host's address on the lab's LAN (eth1), through which it reaches the other hosts."""
        return f"{self.subnet}.0.{self.index}"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.{self.index}.1"

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def upper(self) -> Path:
        return self.directory / "upper"

    @property
    def work(self) -> Path:
        return self.directory / "work"

    @property
    def pid_file(self) -> Path:
        return self.directory / "nspawn.pid"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"
