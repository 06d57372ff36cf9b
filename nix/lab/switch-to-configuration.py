"""switch-to-configuration for lab systems: activates a NixOS-shaped toplevel on a Debian lab host.

Usage: switch-to-configuration switch|boot|test|dry-activate

It decides what to stop, start, restart, reload and skip as NixOS's does (nixpkgs
pkgs/by-name/sw/switch-to-configuration-ng/src/src/main.rs; each function below names the one it mirrors),
records those lists in /run/nixos so that an interrupted switch is finished by the next one, and exits 4 when
a unit fails. `boot` and `switch` make the system the boot default as a boot loader entry would; at boot the
lab's stage 2 (this toplevel's `init`, run as a systemd generator) makes the default the current system.
The toplevel is this script's grandparent directory; its units live in etc/systemd/system, which systemd
reads through /usr/local/lib/systemd/system -> /run/current-system/etc/systemd/system.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

TOPLEVEL = Path(__file__).resolve().parent.parent
CURRENT = Path("/run/current-system")
UNIT_LINK = Path("/usr/local/lib/systemd/system")
# The Debian image's own units: what NixOS's etc/systemd/system holds from systemd itself in every system.
HOST_UNITS = Path("/lib/systemd/system")
COMMAND_DIR = Path("/usr/local/bin")
PROFILE = Path("/nix/var/nix/profiles/system")
# systemd-boot's layout: loader.conf names the default entry, each entry the init of its generation.
LOADER = Path("/boot/loader")
GENERATOR = Path("/usr/local/lib/systemd/system-generators/lab-stage-2")
STATE_DIR = Path("/run/nixos")
START_LIST = STATE_DIR / "start-list"
RESTART_LIST = STATE_DIR / "restart-list"
RELOAD_LIST = STATE_DIR / "reload-list"
LOCK = STATE_DIR / "switch-to-configuration.lock"
FAILED_UNITS_EXIT = 4
ACTIONS = ("switch", "boot", "test", "dry-activate")

# section -> key -> values, as main.rs's UnitInfo.
UnitInfo = dict[str, dict[str, list[str]]]
# A system's unit files by name (None: the system has no such unit).
UnitLookup = Callable[[str], "UnitInfo | None"]


def parse_systemd_ini(info: UnitInfo, text: str) -> None:
    """Add a unit file's sections to info: an empty value clears the key; [Install] is skipped.

    main.rs parse_systemd_ini.
    """
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1]
            section = None if name == "Install" else info.setdefault(name, {})
            continue
        if section is None or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if value == "":
            section[key] = []
        else:
            section.setdefault(key, []).append(value)


def parse_unit(path: Path) -> UnitInfo:
    """A unit file and its drop-ins (<unit>.d/*.conf). main.rs parse_unit."""
    info: UnitInfo = {}
    parse_systemd_ini(info, path.read_text())
    for drop_in in sorted(path.parent.glob(f"{path.name}.d/*.conf")):
        parse_systemd_ini(info, drop_in.read_text())
    return info


def systemd_bool(info: UnitInfo | None, section: str, key: str, default: bool) -> bool:
    """main.rs parse_systemd_bool."""
    values = (info or {}).get(section, {}).get(key)
    if not values:
        return default
    return values[-1] in {"1", "yes", "true", "on"}


class Comparison(Enum):
    EQUAL = "equal"
    NEEDS_RESTART = "restart"
    NEEDS_RELOAD = "reload"


# main.rs compare_units: [Unit] keys whose change neither restarts nor reloads a unit.
UNIT_SECTION_IGNORES = frozenset(
    {
        "X-Reload-Triggers",
        "Description",
        "Documentation",
        "OnFailure",
        "OnSuccess",
        "OnFailureJobMode",
        "IgnoreOnIsolate",
        "StopWhenUnneeded",
        "RefuseManualStart",
        "RefuseManualStop",
        "AllowIsolate",
        "CollectMode",
        "SourcePath",
    }
)


def compare_units(current: UnitInfo, new: UnitInfo) -> Comparison:
    """Equal, or what a difference calls for: a change of X-Reload-Triggers alone (or of a mount's Options)
    reloads, a change of an ignored [Unit] key nothing, anything else restarts. main.rs compare_units."""
    result = Comparison.EQUAL
    for name in current.keys() | new.keys():
        old_section, new_section = current.get(name), new.get(name)
        if old_section is None or new_section is None:
            present = old_section if old_section is not None else new_section
            assert present is not None
            if name != "Unit" or any(key not in UNIT_SECTION_IGNORES for key in present):
                return Comparison.NEEDS_RESTART
            if new_section is not None and "X-Reload-Triggers" in new_section:
                result = Comparison.NEEDS_RELOAD
            continue
        for key in old_section.keys() | new_section.keys():
            old_value, new_value = old_section.get(key), new_section.get(key)
            if old_value == new_value:
                continue
            if name == "Unit" and key == "X-Reload-Triggers" and new_value is not None:
                result = Comparison.NEEDS_RELOAD
            elif name == "Unit" and key in UNIT_SECTION_IGNORES:
                continue
            elif name == "Mount" and key == "Options" and old_value is not None and new_value is not None:
                result = Comparison.NEEDS_RELOAD
            else:
                return Comparison.NEEDS_RESTART
    return result


@dataclass
class Jobs:
    """What a switch does to units, as main.rs's units_to_* maps; filtered: started but not shown."""

    stop: set[str] = field(default_factory=set)
    start: set[str] = field(default_factory=set)
    restart: set[str] = field(default_factory=set)
    reload: set[str] = field(default_factory=set)
    skip: set[str] = field(default_factory=set)
    filtered: set[str] = field(default_factory=set)


def handle_modified_unit(
    unit: str, base_name: str, new_info: UnitInfo, *, new: UnitLookup, active: Mapping[str, str], jobs: Jobs
) -> None:
    """A unit of both systems that changed: reload it, skip it, restart it, or stop it now and start it (or
    its sockets) after the activation. main.rs handle_modified_unit."""
    if unit in {"sysinit.target", "basic.target", "multi-user.target", "graphical.target"} or unit.endswith(
        (".unit", ".slice")
    ):
        return  # cannot be restarted directly; a slice's limits apply on daemon-reload
    if unit.endswith(".mount"):
        (jobs.reload if unit in {"-.mount", "nix.mount"} else jobs.restart).add(unit)
        return
    if unit.endswith(".socket"):
        return  # NixOS leaves a changed socket alone (nixpkgs issue 74899)
    if (
        systemd_bool(new_info, "Service", "X-ReloadIfChanged", False)
        and unit not in jobs.restart
        and unit not in jobs.stop
    ):
        jobs.reload.add(unit)
    elif (
        not systemd_bool(new_info, "Service", "X-RestartIfChanged", True)
        or systemd_bool(new_info, "Unit", "RefuseManualStop", False)
        or systemd_bool(new_info, "Unit", "X-OnlyManualStart", False)
    ):
        jobs.skip.add(unit)
    elif not systemd_bool(new_info, "Service", "X-StopIfChanged", True) or not unit.endswith(".service"):
        jobs.restart.add(unit)
        jobs.reload.discard(unit)
    else:
        # Socket-activated: it has an active socket (Sockets=, else <name>.socket) that the new system has;
        # then the sockets are stopped and started, and the service is started by them.
        sockets = " ".join(new_info.get("Service", {}).get("Sockets", [])).split() or [f"{base_name}.socket"]
        socket_activated = False
        for socket in sockets:
            if socket in active:
                jobs.stop.add(socket)
                if new(socket) is not None:
                    jobs.start.add(socket)
                    socket_activated = True
        if systemd_bool(new_info, "Service", "X-NotSocketActivated", False):
            socket_activated = False
        if not socket_activated:
            jobs.start.add(unit)
        jobs.stop.add(unit)
        jobs.reload.discard(unit)


TEMPLATE_INSTANCE = re.compile(r"^(.*)@[^.]*\.(.*)$")
UNIT_NAME = re.compile(r"^(.*)\.[a-z]*$")


def plan(
    current: UnitLookup, new: UnitLookup, active: Mapping[str, str], recorded: Jobs | None = None
) -> Jobs:
    """What switching from the current system to the new one does, given the active units (name -> active
    state) and the lists an interrupted switch recorded. main.rs do_system_switch, its loop over
    get_active_units."""
    jobs = recorded or Jobs()
    for unit, state in sorted(active.items()):
        if state not in {"active", "activating"}:
            continue
        base_unit = unit
        instance = TEMPLATE_INSTANCE.match(unit)
        if instance and current(unit) is None and new(unit) is None:
            base_unit = f"{instance.group(1)}@.{instance.group(2)}"
        name_match = UNIT_NAME.match(base_unit)
        base_name = name_match.group(1) if name_match else base_unit
        current_info = current(base_unit)
        if current_info is None:
            continue
        new_info = new(base_unit)
        if new_info is None:
            if systemd_bool(current_info, "Unit", "X-StopOnRemoval", True):
                jobs.stop.add(unit)
        elif unit.endswith(".target"):
            # Active targets are started again, which starts what they newly want.
            if not (
                unit in {"suspend.target", "hibernate.target", "hybrid-sleep.target"}
                or systemd_bool(new_info, "Unit", "RefuseManualStart", False)
                or systemd_bool(new_info, "Unit", "X-OnlyManualStart", False)
            ):
                jobs.start.add(unit)
                jobs.filtered.add(unit)
            if systemd_bool(new_info, "Unit", "X-StopOnReconfiguration", False):
                jobs.stop.add(unit)
        else:
            comparison = compare_units(current_info, new_info)
            if comparison is Comparison.NEEDS_RESTART:
                handle_modified_unit(unit, base_name, new_info, new=new, active=active, jobs=jobs)
            elif comparison is Comparison.NEEDS_RELOAD and unit not in jobs.restart:
                jobs.reload.add(unit)
    return jobs


def shown(names: Iterable[str]) -> str:
    """main.rs sorts each list by lower-cased name and joins it with commas."""
    return ", ".join(sorted(names, key=str.lower))


def dry_activate_lines(jobs: Jobs) -> list[str]:
    """What `dry-activate` prints, in main.rs's words and order."""
    lines = []
    if stop := jobs.stop - jobs.filtered:
        lines.append(f"would stop the following units: {shown(stop)}")
    if jobs.skip:
        lines.append(f"would NOT stop the following changed units: {shown(jobs.skip)}")
    lines.append("would activate the configuration...")
    if jobs.reload:
        lines.append(f"would reload the following units: {shown(jobs.reload)}")
    if jobs.restart:
        lines.append(f"would restart the following units: {shown(jobs.restart)}")
    if start := jobs.start - jobs.filtered:
        lines.append(f"would start the following units: {shown(start)}")
    return lines


# ---- The host: files, systemd, users, databases. ----


class ActivationError(Exception):
    pass


def run(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, input=stdin)
    if check and result.returncode != 0:
        raise ActivationError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def unit_lookup(system: Path | None) -> UnitLookup:
    """A system's units; the image's own units (targets, sshd, PostgreSQL) belong to every system, as
    systemd's upstream units are in every NixOS system's etc/systemd/system."""

    def lookup(name: str) -> UnitInfo | None:
        for directory in ([system / "etc" / "systemd" / "system"] if system else []) + [HOST_UNITS]:
            path = directory / name
            if path.is_file() and path.resolve() != Path("/dev/null"):
                return parse_unit(path)
        return None

    return lookup


def unit_states() -> dict[str, tuple[str, str]]:
    """Loaded units that are not inactive, with their active state and sub-state. main.rs get_active_units."""
    listing = run("systemctl", "list-units", "--all", "--plain", "--no-legend", "--full", "--no-pager").stdout
    states = {}
    for line in listing.splitlines():
        words = line.replace("●", " ").split()
        if len(words) >= 4 and words[2] != "inactive":
            states[words[0]] = (words[2], words[3])
    return states


def read_list(path: Path) -> set[str]:
    """main.rs map_from_list_file."""
    return set(path.read_text().split()) if path.exists() else set()


def write_list(path: Path, names: set[str]) -> None:
    """main.rs record_unit / unrecord_unit, all at once."""
    path.write_text("".join(f"{name}\n" for name in sorted(names)))


def remove_list(path: Path) -> None:
    path.unlink(missing_ok=True)


def ensure_users(spec: dict[str, object]) -> None:
    for group in spec.get("groups", []):  # type: ignore[attr-defined]
        if run("getent", "group", group, check=False).returncode != 0:
            run("groupadd", "--system", group)
    for user in spec.get("users", []):  # type: ignore[attr-defined]
        if run("getent", "passwd", user["name"], check=False).returncode != 0:
            run(
                "useradd",
                "--system",
                "--gid",
                user["group"],
                "--home-dir",
                user["home"],
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user["name"],
            )
        member_of = set(run("id", "-Gn", user["name"]).stdout.split())
        for extra in user.get("extraGroups", []):
            if extra not in member_of:
                run("usermod", "--append", "--groups", extra, user["name"])


def psql(script: str) -> None:
    run("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", stdin=script)


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_databases(spec: dict[str, object]) -> None:
    databases = spec.get("databases", [])
    if not databases:
        return
    run("systemctl", "start", "postgresql.service")
    # One psql for every database: \gexec runs the statement a query returns, so each is made only if missing.
    script = []
    for database in databases:  # type: ignore[attr-defined]
        name, owner = database["name"], database["owner"]
        create_role = literal(f"CREATE ROLE {quoted(owner)} LOGIN")
        create_database = literal(f"CREATE DATABASE {quoted(name)} OWNER {quoted(owner)}")
        script += [
            f"SELECT {create_role} WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = {literal(owner)}) \\gexec",
            f"SELECT {create_database} WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = {literal(name)}) \\gexec",
            f"ALTER DATABASE {quoted(name)} OWNER TO {quoted(owner)};",
        ]
    psql("\n".join(script) + "\n")


def link_atomically(link: Path, target: Path) -> None:
    temporary = link.with_name(f".{link.name}.new")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(target)
    temporary.rename(link)


def link_commands(new: Path) -> None:
    """Put the system's commands (manage-<site>) on PATH, removing those it no longer has."""
    source = CURRENT / "sw" / "bin"
    for existing in COMMAND_DIR.iterdir():
        if existing.is_symlink() and str(os.readlink(existing)).startswith(str(source)):
            existing.unlink()
    commands = new / "sw" / "bin"
    if commands.is_dir():
        for command in commands.iterdir():
            (COMMAND_DIR / command.name).symlink_to(source / command.name)


def activate_configuration(new: Path, spec: dict[str, object]) -> None:
    """The lab's part of NixOS's activation script: accounts, the current system, commands, tmpfiles."""
    ensure_users(spec)
    UNIT_LINK.parent.mkdir(parents=True, exist_ok=True)
    if not UNIT_LINK.is_symlink():
        link_atomically(UNIT_LINK, CURRENT / "etc" / "systemd" / "system")
    link_atomically(CURRENT, new)
    link_commands(new)
    tmpfiles = new / "etc" / "tmpfiles.d" / "lab.conf"
    if tmpfiles.exists():
        run("systemd-tmpfiles", "--create", str(tmpfiles))


def generation_of(system: Path) -> int | None:
    """The newest generation of the system profile that is this system."""
    numbers = []
    for link in PROFILE.parent.glob(f"{PROFILE.name}-*-link"):
        number = link.name.removeprefix(f"{PROFILE.name}-").removesuffix("-link")
        if number.isdigit() and link.resolve() == system:
            numbers.append(int(number))
    return max(numbers, default=None)


def install_boot_loader(new: Path) -> None:
    """Make the system the boot default, as NixOS's systemd-boot builder does: an entry for its profile
    generation, named default in loader.conf; and install the lab's stage 2, which boots that entry."""
    generation = generation_of(new)
    if generation is None:
        raise ActivationError(
            f"{new} is no generation of {PROFILE}: set the profile first (nix-env -p {PROFILE} --set {new})"
        )
    entries = LOADER / "entries"
    entries.mkdir(parents=True, exist_ok=True)
    entry = f"nixos-generation-{generation}.conf"
    version = (new / "nixos-version").read_text().strip()
    (entries / f".{entry}.new").write_text(
        f"title NixOS\nversion Generation {generation} {version}\noptions init={new}/init\n"
    )
    (entries / f".{entry}.new").rename(entries / entry)
    (LOADER / ".loader.conf.new").write_text(f"default {entry}\n")
    (LOADER / ".loader.conf.new").rename(LOADER / "loader.conf")
    GENERATOR.parent.mkdir(parents=True, exist_ok=True)
    installed = GENERATOR.with_name(f".{GENERATOR.name}.new")
    installed.write_bytes((new / "init").read_bytes())
    installed.chmod(0o755)
    installed.rename(GENERATOR)
    os.sync()


def run_jobs(verb: str, names: set[str], shown_names: set[str], words: str) -> bool:
    """systemctl VERB NAMES (jobs submitted together, then waited for), its complaints passed on."""
    if shown_names:
        say(f"{words} the following units: {shown(shown_names)}")
    if not names:
        return True
    result = run("systemctl", verb, "--", *sorted(names), check=False)
    sys.stderr.write(result.stderr)
    return result.returncode == 0


def is_active(unit: str) -> bool:
    """main.rs unit_is_active."""
    return run("systemctl", "is-active", "--", unit, check=False).stdout.strip() in {"active", "activating"}


def failed_and_new(before: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Failed units (and those restarting after a failure), and units active now that were not before.
    main.rs, the end of do_system_switch."""
    failed, started = [], []
    for unit, (state, substate) in unit_states().items():
        if state == "failed":
            failed.append(unit)
            continue
        if substate == "auto-restart" and unit.endswith(".service"):
            status = run("systemctl", "show", "--property=ExecMainStatus", "--value", "--", unit, check=False)
            if status.stdout.strip() not in {"", "0"}:
                failed.append(unit)
                continue
        if unit not in before and not unit.endswith(".scope"):
            started.append(unit)
    return failed, started


def switch(new: Path, spec: dict[str, object], jobs: Jobs, before: Mapping[str, str]) -> int:
    """Carry out the jobs around the activation, in main.rs do_system_switch's order."""
    write_list(START_LIST, jobs.start)
    write_list(RESTART_LIST, jobs.restart)
    write_list(RELOAD_LIST, jobs.reload)
    accepted = [True]
    if jobs.stop:
        accepted.append(run_jobs("stop", jobs.stop, jobs.stop - jobs.filtered, "stopping"))
    if jobs.skip:
        say(f"NOT restarting the following changed units: {shown(jobs.skip)}")
    say("activating the configuration...")
    activate_configuration(new, spec)
    run("systemctl", "reset-failed", check=False)
    run("systemctl", "daemon-reload")
    ensure_databases(spec)
    new_units = unit_lookup(new)
    for unit in sorted(jobs.reload):
        if not is_active(unit):
            # Deactivated meanwhile (a requirement stopped): start it instead, unless it refuses.
            info = new_units(unit)
            if not systemd_bool(info, "Unit", "RefuseManualStart", False) or systemd_bool(
                info, "Unit", "X-OnlyManualStart", False
            ):
                jobs.start.add(unit)
                write_list(START_LIST, jobs.start)
            jobs.reload.discard(unit)
            write_list(RELOAD_LIST, jobs.reload)
    if jobs.reload:
        accepted.append(run_jobs("reload", jobs.reload, jobs.reload, "reloading"))
        remove_list(RELOAD_LIST)
    if jobs.restart:
        accepted.append(run_jobs("restart", jobs.restart, jobs.restart, "restarting"))
        remove_list(RESTART_LIST)
    accepted.append(run_jobs("start", jobs.start, jobs.start - jobs.filtered, "starting"))
    remove_list(START_LIST)
    failed, started = failed_and_new(before)
    if started:
        say(f"the following new units were started: {shown(started)}")
    if failed:
        say(f"warning: the following units failed: {shown(failed)}\n")
        sys.stderr.write(
            run("systemctl", "status", "--no-pager", "--full", "--", *sorted(failed), check=False).stdout
        )
    return 0 if all(accepted) and not failed else FAILED_UNITS_EXIT


def recorded_jobs() -> Jobs:
    """The lists an interrupted switch left. main.rs map_from_list_file of the three list files."""
    return Jobs(start=read_list(START_LIST), restart=read_list(RESTART_LIST), reload=read_list(RELOAD_LIST))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ACTIONS:
        sys.stderr.write(f"Usage: switch-to-configuration {'|'.join(ACTIONS)}\n")
        return 1
    action = argv[1]
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    with LOCK.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            say("Could not acquire lock")
            return 1
        try:
            if action in {"switch", "boot"}:
                install_boot_loader(TOPLEVEL)
            if action == "boot":
                return 0
            old = CURRENT.resolve() if CURRENT.exists() else None
            before = {unit: state for unit, (state, _) in unit_states().items()}
            jobs = plan(unit_lookup(old), unit_lookup(TOPLEVEL), before, recorded_jobs())
            if action == "dry-activate":
                for line in dry_activate_lines(jobs):
                    say(line)
                return 0
            spec = json.loads((TOPLEVEL / "lab-system.json").read_text())
            return switch(TOPLEVEL, spec, jobs, before)
        except ActivationError as exc:
            say(f"error: activation failed: {exc}")
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
