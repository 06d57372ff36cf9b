"""Where the lab keeps its files, and the fixed names and addresses of its hosts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_HOSTS = 8
SUBNET_PREFIX = "10.231"


@dataclass(frozen=True)
class LabLayout:
    """Directories of the lab: the image cache and the state of the running hosts."""

    cache_dir: Path
    state_dir: Path

    @classmethod
    def from_environment(cls) -> LabLayout:
        return cls(
            cache_dir=Path(os.environ.get("DJDEPLOY_LAB_CACHE", "/var/cache/djdeploy-lab")),
            state_dir=Path(os.environ.get("DJDEPLOY_LAB_STATE", "/var/lib/djdeploy-lab")),
        )

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    @property
    def client_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yaml"

    def host(self, index: int) -> LabHost:
        return LabHost(index=index, directory=self.hosts_dir / f"lab{index}")


@dataclass(frozen=True)
class LabHost:
    """One lab host: lab<index>, in namespace djlab-lab<index>, at 10.231.<index>.2."""

    index: int
    directory: Path

    @property
    def name(self) -> str:
        return f"lab{self.index}"

    @property
    def netns(self) -> str:
        return f"djlab-{self.name}"

    @property
    def host_link(self) -> str:
        return f"djlab{self.index}"

    @property
    def address(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.2"

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.1"

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
