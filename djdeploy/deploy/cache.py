"""A signed Nix binary cache between the deployer and its hosts: the closure is pushed there once, and
every host fetches what it lacks from it, instead of receiving the closure over the deployer's SSH link.

Nix 2.8 (Debian 12) signs as it writes: a binary cache store URL with `?secret-key=FILE` signs each path's
narinfo; a host checks the signature against its own trusted-public-keys before it accepts a path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from djdeploy.deploy.nix import NIX_COMMAND
from djdeploy.errors import DjdeployError
from djdeploy.inventory import Cache
from djdeploy.remote import process
from djdeploy.remote.ssh import Remote, RemoteCommandError

# Seconds a host may take to answer whether it reaches the cache.
REACH_TIMEOUT = 20


class CacheUnwritable(DjdeployError):
    """The deployer could not write the cache: no host has been touched."""


class CacheRefused(DjdeployError):
    """A host reached the cache but did not accept what it holds (often a signature it does not trust)."""


def signed_push_url(cache: Cache) -> str:
    """The push URL with the signing key as a store parameter, so that `nix copy` signs what it writes."""
    separator = "&" if "?" in cache.push else "?"
    return f"{cache.push}{separator}secret-key={cache.signing_key}"


def push_command(cache: Cache, systems: list[Path]) -> list[str]:
    """`nix copy` to the cache: only the paths it lacks are written, each signed with the cache's key."""
    return [*NIX_COMMAND, "copy", "-v", "--to", signed_push_url(cache), *map(str, systems)]


def push(cache: Cache, systems: list[Path], on_path: Callable[[str], None]) -> None:
    """Write the systems' closures to the cache; on_path hears of each path written."""
    if not cache.signing_key.is_file():
        raise CacheUnwritable(
            f"The cache's signing key {cache.signing_key} does not exist. Make one with `nix-store "
            "--generate-binary-cache-key NAME key.sec key.pub`, give its path as cache.signing_key and the "
            "public key as cache.public_key, then deploy again. No host was touched."
        )

    seen: set[str] = set()

    def on_line(line: str) -> None:
        # Nix 2.8 says "copying path '...'" when it starts a path and again as it writes it.
        if line.startswith("copying path '"):
            path = line.split("'", 2)[1]
            if path not in seen:
                seen.add(path)
                on_path(path)

    try:
        process.stream(push_command(cache, systems), on_line, timeout=3600)
    except DjdeployError as exc:
        raise CacheUnwritable(
            f"Could not write the binary cache {cache.push}: {exc.message} Check that the URL is right and "
            "that this machine may write there, or remove the `cache` section to copy to each host "
            "directly. No host was touched."
        ) from exc


def reach_command(cache: Cache) -> list[str]:
    """Run on a host: whether it reaches the cache (`nix store ping` reads the cache's nix-cache-info)."""
    return [*NIX_COMMAND, "store", "ping", "--store", cache.substitute]


def fetch_command(cache: Cache, system: Path) -> list[str]:
    """Run on a host: fetch what it lacks of the closure from the cache, checking each path's signature."""
    return [*NIX_COMMAND, "copy", "--from", cache.substitute, str(system)]


def unreachable_reason(remote: Remote, cache: Cache) -> str | None:
    """Why the host cannot reach the cache (the end of Nix's message), or None when it can."""
    result = remote.run(reach_command(cache), check=False, privileged=True, timeout=REACH_TIMEOUT)
    if result.exit_code == 0:
        return None
    said = (result.stderr or result.stdout).strip().splitlines()
    return said[-1].removeprefix("error: ").strip() if said else f"nix store ping exited {result.exit_code}"


def fetch(remote: Remote, cache: Cache, system: Path) -> None:
    """Have the host fetch the system's closure from the cache; refuse loudly when it will not take it."""
    try:
        remote.run(fetch_command(cache, system), privileged=True, timeout=3600)
    except RemoteCommandError as exc:
        raise CacheRefused(
            f"{remote.target.name} reached the cache {cache.substitute} but did not accept {system.name}, "
            "so nothing was switched. A path 'lacks a valid signature' when the host does not trust the key "
            f"that signed it: the host's nix.settings.trusted-public-keys must list {cache.public_key!r}, "
            "the public half of cache.signing_key. Nix said:\n" + exc.message
        ) from exc


def push_for_hosts(targets: list[tuple[Cache, Path]], console: Console) -> None:
    """Push each cache's systems once, before any host is touched, with a count of the paths written."""
    by_cache: dict[Cache, list[Path]] = {}
    for cache, system in targets:
        by_cache.setdefault(cache, [])
        if system not in by_cache[cache]:
            by_cache[cache].append(system)
    for cache, systems in by_cache.items():
        _push_showing_progress(cache, systems, console)


def _push_showing_progress(cache: Cache, systems: list[Path], console: Console) -> None:
    written: list[str] = []
    started = time.monotonic()
    with console.status(f"Pushing to the cache {cache.push}") as status:

        def on_path(path: str) -> None:
            written.append(path)
            status.update(f"Pushing to the cache {cache.push}: {len(written)} paths written")

        push(cache, systems, on_path)
    console.print(
        f"[green]✓[/] push to the cache {cache.push} ({len(written)} paths written) "
        f"[dim]{time.monotonic() - started:.2f} s[/]"
    )
