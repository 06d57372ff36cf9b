"""switch-to-configuration for lab systems: activates a NixOS-shaped toplevel on a Debian lab host.

Usage: switch-to-configuration switch|test|boot|dry-activate

Like NixOS's: creates users and groups, installs the units, reloads systemd, stops removed units, restarts
changed ones (reloads those whose only change is their X-Reload-Triggers), starts new ones, ensures the
PostgreSQL roles and databases, points /run/current-system at this system, and exits 4 when a unit fails.
The toplevel is this script's grandparent directory; its units live in etc/systemd/system, which systemd
reads through /usr/local/lib/systemd/system -> /run/current-system/etc/systemd/system.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TOPLEVEL = Path(__file__).resolve().parent.parent
CURRENT = Path("/run/current-system")
UNIT_LINK = Path("/usr/local/lib/systemd/system")
COMMAND_DIR = Path("/usr/local/bin")
UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".path")
RELOAD_TRIGGER = "X-Reload-Triggers="
FAILED_UNITS_EXIT = 4


def units(system: Path) -> dict[str, list[str]]:
    """Unit name -> unit file lines, for the units a system defines."""
    directory = system / "etc" / "systemd" / "system"
    if not directory.is_dir():
        return {}
    return {
        path.name: path.read_text().splitlines()
        for path in sorted(directory.iterdir())
        if path.name.endswith(UNIT_SUFFIXES) and path.is_file()
    }


def wanted(system: Path) -> set[str]:
    """Units that a target of the system wants, i.e. that should be running."""
    directory = system / "etc" / "systemd" / "system"
    if not directory.is_dir():
        return set()
    return {link.name for wants in directory.glob("*.wants") for link in wants.iterdir()}


def without_reload_triggers(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith(RELOAD_TRIGGER)]


def plan(old: Path | None, new: Path) -> dict[str, list[str]]:
    old_units = units(old) if old else {}
    new_units = units(new)
    new_wanted = wanted(new)
    stop = sorted(set(old_units) - set(new_units))
    start = sorted(name for name in set(new_units) - set(old_units) if name in new_wanted)
    restart, reload = [], []
    for name in sorted(set(old_units) & set(new_units)):
        if old_units[name] == new_units[name]:
            continue
        if without_reload_triggers(old_units[name]) == without_reload_triggers(new_units[name]):
            reload.append(name)
        else:
            restart.append(name)
    return {"stop": stop, "restart": restart, "reload": reload, "start": start}


class ActivationError(Exception):
    pass


def run(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, input=stdin)
    if check and result.returncode != 0:
        raise ActivationError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


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


def unit_states(names: list[str]) -> dict[str, dict[str, str]]:
    """systemctl show's Id, ActiveState, SubState and ExecMainStatus of each unit, by unit name."""
    if not names:
        return {}
    shown = run(
        "systemctl", "show", "--property=Id,ActiveState,SubState,ExecMainStatus", "--", *names, check=False
    ).stdout
    states = [
        {key: value for key, _, value in (line.partition("=") for line in block.splitlines())}
        for block in shown.split("\n\n")
    ]
    return {state["Id"]: state for state in states if "Id" in state}


def only_running(actions: dict[str, list[str]]) -> dict[str, list[str]]:
    """Restarts and reloads of running units only, as NixOS's switch-to-configuration looks at the units that
    are not inactive alone (get_active_units in switch-to-configuration-ng): a changed oneshot that is not
    running, such as a scheduled command's service, is left for its timer."""
    states = unit_states(actions["restart"] + actions["reload"])

    def running(name: str) -> bool:
        return states.get(name, {}).get("ActiveState", "inactive") != "inactive"

    return {
        **actions,
        "restart": [name for name in actions["restart"] if running(name)],
        "reload": [name for name in actions["reload"] if running(name)],
    }


def failed(names: list[str]) -> list[str]:
    """As NixOS counts them: failed units, and units waiting to restart after their process failed."""
    return [
        state["Id"]
        for state in unit_states(names).values()
        if state.get("ActiveState") == "failed"
        or (state.get("SubState") == "auto-restart" and state.get("ExecMainStatus", "0") != "0")
    ]


def run_verb(verb: str, names: list[str]) -> bool:
    """systemctl VERB NAMES, its complaints passed on (as NixOS's do: "Job for x failed ..."); ok or not."""
    if not names:
        return True
    result = run("systemctl", verb, "--", *names, check=False)
    sys.stderr.write(result.stderr)
    return result.returncode == 0


def activate(new: Path, spec: dict[str, object], actions: dict[str, list[str]]) -> int:
    ensure_users(spec)
    if actions["stop"]:
        run("systemctl", "stop", *actions["stop"], check=False)
    UNIT_LINK.parent.mkdir(parents=True, exist_ok=True)
    if not UNIT_LINK.is_symlink():
        link_atomically(UNIT_LINK, CURRENT / "etc" / "systemd" / "system")
    link_atomically(CURRENT, new)
    link_commands(new)
    tmpfiles = new / "etc" / "tmpfiles.d" / "lab.conf"
    if tmpfiles.exists():
        run("systemd-tmpfiles", "--create", str(tmpfiles))
    run("systemctl", "daemon-reload")
    ensure_databases(spec)
    # As on NixOS, a unit that fails to reload, restart or start makes the switch exit 4. A refused reload (a
    # Caddyfile Caddy rejects) leaves the unit active on its old configuration: only systemctl names it.
    accepted = [run_verb(verb, actions[verb]) for verb in ("reload", "restart")]
    # Starting every wanted unit also retries those that failed under the previous generation.
    everything_wanted = sorted(wanted(new))
    accepted.append(run_verb("start", everything_wanted))
    broken = failed(sorted({*everything_wanted, *actions["reload"], *actions["restart"]}))
    if broken:
        # NixOS's words, and its `systemctl status` of them.
        sys.stderr.write(f"warning: the following units failed: {', '.join(broken)}\n\n")
        sys.stderr.write(
            run("systemctl", "status", "--no-pager", "--full", "--", *broken, check=False).stdout
        )
    return 0 if all(accepted) and not broken else FAILED_UNITS_EXIT


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in {"switch", "test", "boot", "dry-activate"}:
        sys.stderr.write("Usage: switch-to-configuration switch|test|boot|dry-activate\n")
        return 1
    action = argv[1]
    old = CURRENT.resolve() if CURRENT.exists() else None
    actions = only_running(plan(old, TOPLEVEL))
    if action == "dry-activate":
        for verb, names in actions.items():
            for name in names:
                print(f"would {verb} {name}")
        return 0
    if action == "boot":
        # Lab hosts have no boot loader: the profile link set by the deployer is what a reboot would use.
        return 0
    spec = json.loads((TOPLEVEL / "lab-system.json").read_text())
    try:
        return activate(TOPLEVEL, spec, actions)
    except ActivationError as exc:
        sys.stderr.write(f"error: activation failed: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
