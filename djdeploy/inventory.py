"""The inventory: which hosts exist, how to reach them and what to build for them.

Validation errors name the file, the line and the field, and unknown keys are errors.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import yaml

from djdeploy.errors import DjdeployError
from djdeploy.remote.ssh import SshSettings, SshTarget

T = TypeVar("T")


class InventoryError(DjdeployError):
    pass


class BuildPlace(StrEnum):
    """Where a host's system is built."""

    LOCAL = "local"
    TARGET = "target"
    # Another machine, reached over SSH: a host of the inventory or user@host.
    BUILD_HOST = "build host"


@dataclass(frozen=True)
class BuildOn:
    place: BuildPlace = BuildPlace.LOCAL
    # The build host, when place is BUILD_HOST.
    builder: SshTarget | None = None


@dataclass(frozen=True)
class BuildSpec:
    """What to build for a host: a flake NixOS configuration, or a Nix file and attribute."""

    flake: str | None = None
    file: Path | None = None
    attribute: str | None = None
    # Nix settings for this build (`--option NAME VALUE`), sorted by name: substituters, max-jobs, ...
    nix_options: tuple[tuple[str, str], ...] = ()
    on: BuildOn = BuildOn()


@dataclass(frozen=True)
class Timeouts:
    activation: float = 600.0
    confirm: float = 60.0
    health: float = 60.0
    # The migrations applied before the switch, while the old release serves.
    migrate: float = 600.0


class BeforeMigrate(StrEnum):
    """When a deploy dumps a site's database first."""

    # Only when its migration plan applies migrations.
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class DatabaseRollback(StrEnum):
    """What a rollback does with the migrations the deploy applied."""

    # Unapply them with the new release's code; when one cannot be, keep the schema.
    REVERSE = "reverse"
    # Restore the dump taken before the deploy (writes since are gone).
    RESTORE = "restore"
    # Leave the schema as it is, and say which migrations stay and which dump holds the data from before.
    KEEP = "keep"


@dataclass(frozen=True)
class Migrations:
    # Refuse a deploy whose plan has a migration unsafe while the old release still serves.
    require_safe: bool = False


@dataclass(frozen=True)
class Backup:
    keep: int = 5
    before_migrate: BeforeMigrate = BeforeMigrate.AUTO


@dataclass(frozen=True)
class Rollback:
    database: DatabaseRollback = DatabaseRollback.REVERSE


@dataclass(frozen=True)
class Cache:
    """A signed Nix binary cache: the deployer writes closures to it once, and hosts fetch from it."""

    # The store URL this machine writes to (file://..., s3://..., ssh://...).
    push: str
    # The URL hosts read from (often https://...); the same store as push, seen from the hosts.
    substitute: str
    # The secret key, on this machine, that signs each path written.
    signing_key: Path
    # Its public half (name:base64), which hosts' trusted-public-keys must list.
    public_key: str


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    ssh: SshSettings
    build: BuildSpec
    timeouts: Timeouts
    sites: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cache: Cache | None = None
    migrations: Migrations = Migrations()
    backup: Backup = Backup()
    rollback: Rollback = Rollback()

    @property
    def ssh_target(self) -> SshTarget:
        return SshTarget(self.name, self.address, self.ssh)


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: dict[str, Host] = field(default_factory=dict)

    def select(self, names: str | None = None, tag: str | None = None) -> list[Host]:
        """Hosts named in a comma-separated list, or carrying a tag (`@web` or `web`), or all."""
        if names:
            wanted = [name.strip() for name in names.split(",") if name.strip()]
            unknown = [name for name in wanted if name not in self.hosts]
            if unknown:
                raise InventoryError(
                    f"{self.path} has no host named {', '.join(unknown)}. "
                    f"Hosts it lists: {', '.join(self.hosts) or 'none'}."
                )
            return [self.hosts[name] for name in wanted]
        if tag:
            label = tag.removeprefix("@")
            tagged = [host for host in self.hosts.values() if label in host.tags]
            if not tagged:
                raise InventoryError(f"No host in {self.path} has the tag '{label}'.")
            return tagged
        return list(self.hosts.values())


class Reader:
    """Reads YAML nodes, remembering the file so that every error can point at a line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node, where: str, problem: str) -> InventoryError:
        return InventoryError(f"{self.path}:{node.start_mark.line + 1} {where}: {problem}")

    def mapping(self, node: yaml.Node, where: str, allowed: Iterable[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, f"expected a mapping, got {_describe(node)}")
        result: dict[str, yaml.Node] = {}
        allowed_keys = list(allowed)
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if allowed_keys and key not in allowed_keys:
                raise self.fail(
                    key_node,
                    f"{where}.{key}" if where else key,
                    f"unknown key; expected one of {', '.join(allowed_keys)}",
                )
            if key in result:
                raise self.fail(key_node, f"{where}.{key}" if where else key, "given twice")
            result[key] = value_node
        return result

    def scalar(self, node: yaml.Node, where: str, kind: Callable[[str], T], kind_name: str) -> T:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.fail(node, where, f"expected {kind_name}, got {_describe(node)}")
        try:
            return kind(node.value)
        except ValueError:
            raise self.fail(node, where, f"expected {kind_name}, got '{node.value}'") from None

    def string_list(
        self,
        node: yaml.Node,
        where: str,
        kind: Callable[[str], str] = str,
        kind_name: str = "a string",
    ) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, where, f"expected a list, got {_describe(node)}")
        return tuple(self.scalar(item, f"{where}[{i}]", kind, kind_name) for i, item in enumerate(node.value))


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing"
    return f"'{node.value}'"


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"true", "yes", "on"}:
        return True
    if lowered in {"false", "no", "off"}:
        return False
    raise ValueError(text)


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError(text)
    return value


def positive_seconds(text: str) -> float:
    """A positive finite number of seconds (else ValueError): every timeout, here or on the command line."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(text)
    return value


def at_least_one(text: str) -> int:
    """A whole number from 1 (ValueError otherwise): how many hosts at once, or in a batch."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _matching(pattern: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if re.fullmatch(pattern, text) is None:
            raise ValueError(text)
        return text

    return check


# Host names appear in commands the user is told to run; site names as the NixOS module's instance names
# (nix/sites/assertions.nix), which name units, directories and the manage-<name> command.
_host_name = _matching(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
HOST_NAME = "a host name: letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit"
_site_name = _matching(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
SITE_NAME = "a site name: letters, digits, `_` and `-`, as the module's django.sites.<name>"
_DNS_NAME = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?"
)
ADDRESS = "a DNS name or an IP address"


def _address(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if _DNS_NAME.fullmatch(text) is None or len(text) > 253:
            raise
    return text


SSH_KEYS = ("user", "port", "known_hosts", "identity", "connect_timeout", "sudo")
BUILD_KEYS = ("flake", "file", "attribute", "nix_options", "on")
TIMEOUT_KEYS = ("activation", "confirm", "health", "migrate")
CACHE_KEYS = ("push", "substitute", "signing_key", "public_key")
MIGRATIONS_KEYS = ("require_safe",)
BACKUP_KEYS = ("keep", "before_migrate")
ROLLBACK_KEYS = ("database",)
_SETTINGS = ("migrations", "backup", "rollback")
HOST_KEYS = ("address", "ssh", "build", "timeouts", "sites", "tags", "cache", *_SETTINGS)
DEFAULT_KEYS = ("ssh", "build", "timeouts", "sites", "tags", "cache", *_SETTINGS)


def _path(base: Path) -> Callable[[str], Path]:
    def resolve(text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else base / path

    return resolve


def _read_ssh(reader: Reader, nodes: list[tuple[yaml.Node, str]]) -> SshSettings:
    values: dict[str, object] = {}
    readers: dict[str, tuple[Callable[[str], object], str]] = {
        "user": (str, "a user name"),
        "port": (_port, "a port number from 1 to 65535"),
        "known_hosts": (_path(reader.path.parent), "a path"),
        "identity": (_path(reader.path.parent), "a path"),
        "connect_timeout": (positive_seconds, "a positive number of seconds"),
        "sudo": (_boolean, "true or false"),
    }
    for node, where in nodes:
        for key, value in reader.mapping(node, where, SSH_KEYS).items():
            kind, name = readers[key]
            values[key] = reader.scalar(value, f"{where}.{key}", kind, name)
    return SshSettings(**values)  # type: ignore[arg-type]


def _read_build(
    reader: Reader, nodes: list[tuple[yaml.Node, str]]
) -> tuple[BuildSpec, tuple[yaml.Node, str] | None]:
    """The build spec, and the node of its `on` key (resolved once every host is read)."""
    values: dict[str, object] = {}
    nix_options: dict[str, str] = {}
    on: tuple[yaml.Node, str] | None = None
    for node, where in nodes:
        for key, value in reader.mapping(node, where, BUILD_KEYS).items():
            if key == "nix_options":
                nix_options.update(_read_nix_options(reader, value, f"{where}.{key}"))
                continue
            if key == "on":
                on = (value, f"{where}.{key}")
                continue
            kind: Callable[[str], object] = _path(reader.path.parent) if key == "file" else str
            values[key] = reader.scalar(value, f"{where}.{key}", kind, "a string")
    spec = BuildSpec(**values, nix_options=tuple(sorted(nix_options.items())))  # type: ignore[arg-type]
    return spec, on


def build_on(text: str, host: Host, hosts: Mapping[str, Host]) -> BuildOn:
    """`local`, `target`, a host of the inventory or user@host, as where host's system builds.

    A user@host builder is reached with the host's own SSH settings (known_hosts, identity)."""
    if text == BuildPlace.LOCAL:
        return BuildOn()
    if text in (BuildPlace.TARGET, host.name):
        return BuildOn(BuildPlace.TARGET)
    if text in hosts:
        return BuildOn(BuildPlace.BUILD_HOST, hosts[text].ssh_target)
    user, at, address = text.rpartition("@")
    if at and user and address and " " not in text:
        ssh = replace(host.ssh, user=user, port=22, sudo=False)
        builder = SshTarget(address, address, ssh)
        return BuildOn(BuildPlace.BUILD_HOST, builder)
    raise ValueError(
        f"expected local, target, a host of the inventory ({', '.join(hosts)}) or user@host, got '{text}'"
    )


def _read_nix_options(reader: Reader, node: yaml.Node, where: str) -> dict[str, str]:
    """Nix settings by name; a value is a string, number or boolean (true/false as Nix spells them)."""
    if not isinstance(node, yaml.MappingNode):
        raise reader.fail(node, where, f"expected a mapping of Nix settings, got {_describe(node)}")
    options = {}
    for key_node, value_node in node.value:
        name = str(key_node.value)
        if not isinstance(value_node, yaml.ScalarNode) or value_node.tag == "tag:yaml.org,2002:null":
            raise reader.fail(value_node, f"{where}.{name}", f"expected a value, got {_describe(value_node)}")
        value = str(value_node.value)
        if value_node.tag == "tag:yaml.org,2002:bool":  # YAML's yes/on/True: Nix wants true or false
            value = "true" if _boolean(value) else "false"
        options[name] = value
    return options


def _read_timeouts(reader: Reader, nodes: list[tuple[yaml.Node, str]]) -> Timeouts:
    values: dict[str, float] = {}
    for node, where in nodes:
        for key, value in reader.mapping(node, where, TIMEOUT_KEYS).items():
            values[key] = reader.scalar(
                value, f"{where}.{key}", positive_seconds, "a positive number of seconds"
            )
    return Timeouts(**values)


def _one_of(kind: type[StrEnum]) -> tuple[Callable[[str], object], str]:
    return kind, " or ".join(member.value for member in kind)


def _read_settings(
    reader: Reader, nodes: list[tuple[yaml.Node, str]], keys: tuple[str, ...], make: Callable[..., T]
) -> T:
    """A mapping of settings (migrations, backup, rollback): the host's override the defaults' one by one."""
    readers: dict[str, tuple[Callable[[str], object], str]] = {
        "require_safe": (_boolean, "true or false"),
        "keep": (at_least_one, "a whole number from 1"),
        "before_migrate": _one_of(BeforeMigrate),
        "database": _one_of(DatabaseRollback),
    }
    values: dict[str, object] = {}
    for node, where in nodes:
        for key, value in reader.mapping(node, where, keys).items():
            kind, name = readers[key]
            values[key] = reader.scalar(value, f"{where}.{key}", kind, name)
    return make(**values)


def _read_cache(reader: Reader, nodes: list[tuple[yaml.Node, str]]) -> Cache | None:
    """The cache, its keys given by the defaults and overridden one by one by the host; None without one."""
    values: dict[str, object] = {}
    last: tuple[yaml.Node, str] | None = None
    for node, where in nodes:
        for key, value in reader.mapping(node, where, CACHE_KEYS).items():
            kind: Callable[[str], object] = _path(reader.path.parent) if key == "signing_key" else str
            values[key] = reader.scalar(value, f"{where}.{key}", kind, "a string")
        last = (node, where)
    if last is None:
        return None
    missing = [key for key in CACHE_KEYS if key not in values]
    if missing:
        raise reader.fail(
            last[0], last[1], f"missing {', '.join(missing)}: a cache needs all of {', '.join(CACHE_KEYS)}"
        )
    return Cache(**values)  # type: ignore[arg-type]


def _layers(
    defaults: dict[str, yaml.Node], fields: dict[str, yaml.Node], key: str, where: str
) -> list[tuple[yaml.Node, str]]:
    """The defaults' value of a mapping key, then the host's, which overrides it key by key."""
    layers = []
    if key in defaults:
        layers.append((defaults[key], f"defaults.{key}"))
    if key in fields:
        layers.append((fields[key], f"{where}.{key}"))
    return layers


def _listed(
    reader: Reader, defaults: dict[str, yaml.Node], fields: dict[str, yaml.Node], key: str, where: str
) -> tuple[str, ...]:
    """A list key: the host's value replaces the defaults' value."""
    kind, kind_name = (_site_name, SITE_NAME) if key == "sites" else (str, "a string")
    if key in fields:
        return reader.string_list(fields[key], f"{where}.{key}", kind, kind_name)
    if key in defaults:
        return reader.string_list(defaults[key], f"defaults.{key}", kind, kind_name)
    return ()


def compose_file(path: Path, needs: str) -> tuple[yaml.Node, Reader]:
    """The YAML of path as nodes (they know their lines) and their Reader; needs: what an empty file lacks."""
    try:
        root = yaml.compose(path.read_text())
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path} is not valid YAML: {exc}") from exc
    if root is None:
        raise InventoryError(f"{path} is empty: it needs {needs}.")
    return root, Reader(path)


def load(path: Path) -> Inventory:
    """Read and validate an inventory file."""
    if not path.exists():
        raise InventoryError(
            f"No inventory at {path}. Copy inventory.example.yaml to inventory.yaml and describe your hosts, "
            "or point to one with --inventory or DJDEPLOY_INVENTORY."
        )
    root, reader = compose_file(path, "a `hosts:` mapping")
    top = reader.mapping(root, "", ("defaults", "hosts"))
    defaults = reader.mapping(top["defaults"], "defaults", DEFAULT_KEYS) if "defaults" in top else {}
    if "hosts" not in top:
        raise reader.fail(root, "hosts", "missing: list at least one host")
    hosts: dict[str, Host] = {}
    build_on_nodes: dict[str, tuple[yaml.Node, str]] = {}
    host_nodes = reader.mapping(top["hosts"], "hosts", ())
    name_nodes = {str(key.value): key for key, _ in top["hosts"].value}
    for name, node in host_nodes.items():
        where = f"hosts.{name}"
        reader.scalar(name_nodes[name], where, _host_name, HOST_NAME)
        fields = reader.mapping(node, where, HOST_KEYS)
        if "address" not in fields:
            raise reader.fail(
                name_nodes[name], f"{where}.address", "missing: give the host's DNS name or IP address"
            )
        build, on = _read_build(reader, _layers(defaults, fields, "build", where))
        if on is not None:
            build_on_nodes[name] = on
        hosts[name] = Host(
            name=name,
            address=reader.scalar(fields["address"], f"{where}.address", _address, ADDRESS),
            ssh=_read_ssh(reader, _layers(defaults, fields, "ssh", where)),
            build=build,
            timeouts=_read_timeouts(reader, _layers(defaults, fields, "timeouts", where)),
            sites=_listed(reader, defaults, fields, "sites", where),
            tags=_listed(reader, defaults, fields, "tags", where),
            cache=_read_cache(reader, _layers(defaults, fields, "cache", where)),
            migrations=_read_settings(
                reader, _layers(defaults, fields, "migrations", where), MIGRATIONS_KEYS, Migrations
            ),
            backup=_read_settings(reader, _layers(defaults, fields, "backup", where), BACKUP_KEYS, Backup),
            rollback=_read_settings(
                reader, _layers(defaults, fields, "rollback", where), ROLLBACK_KEYS, Rollback
            ),
        )
    for name, (node, where) in build_on_nodes.items():
        text = reader.scalar(node, where, str, "local, target, a host of the inventory or user@host")
        try:
            place = build_on(text, hosts[name], hosts)
        except ValueError as exc:
            raise reader.fail(node, where, str(exc)) from None
        hosts[name] = replace(hosts[name], build=replace(hosts[name].build, on=place))
    return Inventory(path=path, hosts=hosts)
