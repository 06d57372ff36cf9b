"""What a host runs and its system profile's generations, read over SSH."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from djdeploy.host import lock
from djdeploy.host import paths as host_paths
from djdeploy.host.lock import LockOwner
from djdeploy.remote.ssh import Remote


@dataclass(frozen=True)
class Generation:
    """A generation of the host's system profile (system-N-link) and the system it points to."""

    number: int
    system: Path
    # When the link was made; None where it was not asked for.
    created: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """The host's running system, the system profile's current generation and who holds the deploy lock."""

    current_system: Path | None
    # Where the profile points, also when it is not a generation link (a profile set by hand).
    profile_system: Path | None
    generation: Generation | None
    lock: LockOwner | None = None

    @property
    def generation_number(self) -> int | None:
        return self.generation.number if self.generation else None

    @property
    def runs_profile(self) -> bool:
        """/run/current-system is the profile's system (not so after a `test` switch or before a reboot)."""
        return self.current_system is not None and self.current_system == self.profile_system


# One round trip: five lines, each empty when the link (or the lock) is absent: the running system, the
# profile's system, its generation link, the link's mtime and the lock's owner (lock.OWNER_COMMAND).
FACTS_COMMAND = (
    f"cd {Path(host_paths.SYSTEM_PROFILE).parent} 2>/dev/null; link=$(readlink {host_paths.SYSTEM_PROFILE}); "
    f'printf "%s\\n" "$(readlink -f {host_paths.CURRENT_SYSTEM} 2>/dev/null)" '
    f'"$(readlink -f {host_paths.SYSTEM_PROFILE} 2>/dev/null)" "$link" '
    '"$([ -n "$link" ] && stat -c %Y "$link" 2>/dev/null)" '
    f'"$({lock.OWNER_COMMAND})"'
)


def parse_facts(text: str) -> Facts:
    current, profile, link, created, owner = [*text.split("\n"), "", "", "", "", ""][:5]
    profile_system = _store_path(profile)
    number = generation_number(link)
    return Facts(
        current_system=_store_path(current),
        profile_system=profile_system,
        generation=(
            Generation(
                number,
                profile_system,
                datetime.fromtimestamp(int(created), UTC) if created.isdigit() else None,
            )
            if number is not None and profile_system is not None
            else None
        ),
        lock=LockOwner.parse(owner) if owner else None,
    )


def facts(remote: Remote) -> Facts:
    return parse_facts(remote.run_shell(FACTS_COMMAND).stdout)


def _store_path(text: str) -> Path | None:
    return Path(text) if text.startswith("/nix/store/") else None


def generation_number(link: str) -> int | None:
    """system-12-link -> 12."""
    name = Path(link).name
    if name.startswith("system-") and name.endswith("-link"):
        number = name.removeprefix("system-").removesuffix("-link")
        if number.isdigit():
            return int(number)
    return None


# Each generation link and the system it points to, a line each.
GENERATIONS_COMMAND = (
    f'for link in {Path(host_paths.SYSTEM_PROFILE).parent}/system-*-link; do [ -e "$link" ] && '
    'printf "%s %s\\n" "$link" "$(readlink -f "$link")"; done; true'
)


def generations(remote: Remote) -> list[Generation]:
    """The system profile's generations, oldest first."""
    listing = remote.run_shell(GENERATIONS_COMMAND).stdout
    found = []
    for line in listing.splitlines():
        link, _, system = line.partition(" ")
        number = generation_number(link)
        if number is not None:
            found.append(Generation(number, Path(system)))
    return sorted(found, key=lambda generation: generation.number)
