"""What the lab's switch-to-configuration decides to stop, start, restart, reload and skip, row by row.

Each row is a pair of unit files (the running system's and the new one's), the units active before the switch,
and the lists NixOS's switch-to-configuration makes of them: the rules of nixpkgs'
switch-to-configuration-ng (main.rs compare_units, handle_modified_unit and the loop over the active units of
do_system_switch), with the expectations of nixpkgs nixos/tests/switch-test.nix where it has one (named).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.test_nix_module import pure

SCRIPT = Path(__file__).resolve().parent.parent / "nix" / "lab" / "switch-to-configuration.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lab_switch_to_configuration", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


switch: Any = _load()

SIMPLE = "[Unit]\n[Service]\nType=oneshot\nRemainAfterExit=true\nExecStart=/bin/true\nExecReload=/bin/true\n"
NOSTOP = SIMPLE + "X-StopIfChanged=false\n"
SOCKET = "[Unit]\n[Socket]\nListenStream=/run/test.sock\n"
TARGET = "[Unit]\nDescription=A test target\n"


def changed(text: str, line: str = "X-Test=true") -> str:
    """text with one more line at the end (in its last section)."""
    return text + line + "\n"


@dataclass(frozen=True)
class Row:
    old: dict[str, str]
    new: dict[str, str]
    active: dict[str, str]
    stop: set[str] = field(default_factory=set)
    start: set[str] = field(default_factory=set)
    restart: set[str] = field(default_factory=set)
    reload: set[str] = field(default_factory=set)
    skip: set[str] = field(default_factory=set)


def active(*names: str, state: str = "active") -> dict[str, str]:
    return dict.fromkeys(names, state)


ROWS = {
    # switch-test.nix "simpleServiceModified": stopIfChanged (true by default) stops now, starts later.
    "changed service is stopped then started": Row(
        {"test.service": SIMPLE},
        {"test.service": changed(SIMPLE)},
        active("test.service"),
        stop={"test.service"},
        start={"test.service"},
    ),
    # "simpleServiceNostop"
    "changed service with stopIfChanged false is restarted": Row(
        {"test.service": NOSTOP},
        {"test.service": changed(NOSTOP)},
        active("test.service"),
        restart={"test.service"},
    ),
    # "simpleServiceReload"
    "changed service with reloadIfChanged is reloaded": Row(
        {"test.service": SIMPLE},
        {"test.service": changed(SIMPLE, "X-ReloadIfChanged=true")},
        active("test.service"),
        reload={"test.service"},
    ),
    # "simpleServiceNorestart": NOT restarting the following changed units
    "changed service with restartIfChanged false is skipped": Row(
        {"test.service": SIMPLE},
        {"test.service": changed(SIMPLE, "X-RestartIfChanged=false")},
        active("test.service"),
        skip={"test.service"},
    ),
    "changed service refusing a manual stop is skipped": Row(
        {"test.service": SIMPLE},
        # RefuseManualStop alone is an ignored key: another change makes the unit count as changed.
        {"test.service": changed("[Unit]\nRefuseManualStop=true\n" + SIMPLE.removeprefix("[Unit]\n"))},
        active("test.service"),
        skip={"test.service"},
    ),
    "changed service started only by hand is skipped": Row(
        {"test.service": SIMPLE},
        {"test.service": "[Unit]\nX-OnlyManualStart=true\n" + SIMPLE.removeprefix("[Unit]\n")},
        active("test.service"),
        skip={"test.service"},
    ),
    # "simpleServiceDifferentDescription": ignored [Unit] keys change nothing.
    "a new description changes nothing": Row(
        {"test.service": SIMPLE},
        {"test.service": "[Unit]\nDescription=Test unit\nDocumentation=man:test\n" + SIMPLE[7:]},
        active("test.service"),
    ),
    # "simpleServiceWithInstallSection"
    "an [Install] section changes nothing": Row(
        {"test.service": NOSTOP},
        {"test.service": NOSTOP + "[Install]\nWantedBy=multi-user.target\n"},
        active("test.service"),
    ),
    # "simpleServiceWithExtraSection"
    "a new section restarts": Row(
        {"test.service": NOSTOP},
        {"test.service": NOSTOP + "[X-Test]\nX-Test-Value=a\n"},
        active("test.service"),
        restart={"test.service"},
    ),
    # "simpleServiceReloadTrigger"
    "a new reload trigger reloads": Row(
        {"test.service": NOSTOP},
        {"test.service": "[Unit]\nX-Reload-Triggers=/nix/store/a\n" + NOSTOP[7:]},
        active("test.service"),
        reload={"test.service"},
    ),
    # "simpleServiceReloadTriggerModified"
    "a changed reload trigger reloads": Row(
        {"test.service": "[Unit]\nX-Reload-Triggers=/nix/store/a\n" + NOSTOP[7:]},
        {"test.service": "[Unit]\nX-Reload-Triggers=/nix/store/b\n" + NOSTOP[7:]},
        active("test.service"),
        reload={"test.service"},
    ),
    # "simpleServiceReloadTriggerModifiedAndSomethingElse"
    "a changed reload trigger and another change restart": Row(
        {"test.service": "[Unit]\nX-Reload-Triggers=/nix/store/a\n" + NOSTOP[7:]},
        {"test.service": changed("[Unit]\nX-Reload-Triggers=/nix/store/b\n" + NOSTOP[7:])},
        active("test.service"),
        restart={"test.service"},
    ),
    # "simpleServiceReloadTriggerModifiedSomethingElse": removing the trigger alone does nothing.
    "a removed reload trigger changes nothing": Row(
        {"test.service": "[Unit]\nX-Reload-Triggers=/nix/store/b\n" + changed(NOSTOP)[7:]},
        {"test.service": changed(NOSTOP)},
        active("test.service"),
    ),
    "a changed restart trigger restarts": Row(
        {"test.service": "[Unit]\nX-Restart-Triggers=/nix/store/a\n" + NOSTOP[7:]},
        {"test.service": "[Unit]\nX-Restart-Triggers=/nix/store/b\n" + NOSTOP[7:]},
        active("test.service"),
        restart={"test.service"},
    ),
    # "socket-activated services": stopIfChanged true stops the service and its socket, starts the socket.
    "socket-activated service: its socket is stopped and started instead": Row(
        {"sa.service": SIMPLE, "sa.socket": SOCKET},
        {"sa.service": changed(SIMPLE), "sa.socket": SOCKET},
        active("sa.service", "sa.socket"),
        stop={"sa.service", "sa.socket"},
        start={"sa.socket"},
    ),
    # ... with stopIfChanged false, only the service is restarted: the socket stays and keeps its queue.
    "socket-activated service with stopIfChanged false is restarted alone": Row(
        {"sa.service": NOSTOP, "sa.socket": SOCKET},
        {"sa.service": changed(NOSTOP), "sa.socket": SOCKET},
        active("sa.service", "sa.socket"),
        restart={"sa.service"},
    ),
    # ... "Changing a reload trigger of a socket-activated unit only reloads it"
    "socket-activated service whose reload trigger changed is reloaded": Row(
        {"sa.service": "[Unit]\nX-Reload-Triggers=a\n" + SIMPLE[7:], "sa.socket": SOCKET},
        {"sa.service": "[Unit]\nX-Reload-Triggers=b\n" + SIMPLE[7:], "sa.socket": SOCKET},
        active("sa.service", "sa.socket"),
        reload={"sa.service"},
    ),
    "the socket is named by Sockets=": Row(
        {"sa.service": SIMPLE + "Sockets=other.socket\n", "other.socket": SOCKET},
        {"sa.service": changed(SIMPLE + "Sockets=other.socket\n"), "other.socket": SOCKET},
        active("sa.service", "other.socket"),
        stop={"sa.service", "other.socket"},
        start={"other.socket"},
    ),
    "notSocketActivated: the service is started again with its socket": Row(
        {"sa.service": SIMPLE, "sa.socket": SOCKET},
        {"sa.service": changed(SIMPLE, "X-NotSocketActivated=true"), "sa.socket": SOCKET},
        active("sa.service", "sa.socket"),
        stop={"sa.service", "sa.socket"},
        start={"sa.service", "sa.socket"},
    ),
    "a socket gone from the new system is stopped, not started": Row(
        {"sa.service": SIMPLE, "sa.socket": SOCKET},
        {"sa.service": changed(SIMPLE)},
        active("sa.service", "sa.socket"),
        stop={"sa.service", "sa.socket"},
        start={"sa.service"},
    ),
    "a changed socket is left alone": Row(
        {"sa.service": SIMPLE, "sa.socket": SOCKET},
        {"sa.service": SIMPLE, "sa.socket": changed(SOCKET, "SocketMode=0600")},
        active("sa.service", "sa.socket"),
    ),
    # "Changing a non-activated service does nothing": only active units are acted on.
    "an inactive changed service is left alone": Row(
        {"sa.service": SIMPLE, "sa.socket": SOCKET},
        {"sa.service": changed(SIMPLE), "sa.socket": SOCKET},
        active("sa.socket"),
    ),
    "a failed changed service is left alone (starting its target starts it)": Row(
        {"test.service": SIMPLE},
        {"test.service": changed(SIMPLE)},
        active("test.service", state="failed"),
    ),
    "a unit gone from the new system is stopped": Row(
        {"test.service": SIMPLE, "kept.service": SIMPLE},
        {"kept.service": SIMPLE},
        active("test.service", "kept.service"),
        stop={"test.service"},
    ),
    "a removed unit with X-StopOnRemoval false keeps running": Row(
        {"test.service": "[Unit]\nX-StopOnRemoval=false\n" + SIMPLE[7:]},
        {},
        active("test.service"),
    ),
    "a new unit is not started by the unit loop (its target's start does that)": Row(
        {},
        {"new.service": SIMPLE},
        {},
    ),
    # "targets": an active target is started again (not shown); its new wants start with it.
    "an active target is started again": Row(
        {"multi-user.target": TARGET},
        {"multi-user.target": TARGET},
        active("multi-user.target"),
        start={"multi-user.target"},
    ),
    "a target refusing a manual start is not started": Row(
        {"t.target": TARGET},
        {"t.target": TARGET + "RefuseManualStart=true\n"},
        active("t.target"),
    ),
    # "targetModifiedStopOnReconfig"
    "a target with X-StopOnReconfiguration is stopped and started": Row(
        {"t.target": TARGET},
        {"t.target": TARGET + "X-StopOnReconfiguration=true\n"},
        active("t.target"),
        stop={"t.target"},
        start={"t.target"},
    ),
    # "hybridSleepModified"
    "sleep targets are not started": Row(
        {"hybrid-sleep.target": TARGET},
        {"hybrid-sleep.target": changed(TARGET, "After=a.service")},
        active("hybrid-sleep.target"),
    ),
    # "slices": a slice's limits apply on daemon-reload.
    "a changed slice is not restarted": Row(
        {"test.slice": "[Unit]\n[Slice]\nMemoryMax=0\n"},
        {"test.slice": "[Unit]\n[Slice]\nMemoryMax=infinity\n"},
        active("test.slice"),
    ),
    # "timers": not a service, so restarted (it has no ExecStop= to run in the old environment).
    "a changed timer is restarted": Row(
        {"t.timer": "[Unit]\n[Timer]\nOnCalendar=daily\n"},
        {"t.timer": "[Unit]\n[Timer]\nOnCalendar=weekly\n"},
        active("t.timer"),
        restart={"t.timer"},
    ),
    # "mounts"
    "a mount whose options changed is reloaded": Row(
        {"m.mount": "[Unit]\n[Mount]\nWhat=tmpfs\nWhere=/m\nOptions=size=1m\n"},
        {"m.mount": "[Unit]\n[Mount]\nWhat=tmpfs\nWhere=/m\nOptions=size=10m\n"},
        active("m.mount"),
        reload={"m.mount"},
    ),
    "a mount otherwise changed is restarted": Row(
        {"m.mount": "[Unit]\n[Mount]\nWhat=tmpfs\nWhere=/m\n"},
        {"m.mount": "[Unit]\n[Mount]\nWhat=ramfs\nWhere=/m\n"},
        active("m.mount"),
        restart={"m.mount"},
    ),
    # "unitWithTemplateModified": instances follow their template.
    "instances of a changed template are stopped and started": Row(
        {"inst@.service": SIMPLE},
        {"inst@.service": changed(SIMPLE)},
        active("inst@one.service", "inst@two.service"),
        stop={"inst@one.service", "inst@two.service"},
        start={"inst@one.service", "inst@two.service"},
    ),
    "an empty value clears the key before it": Row(
        {"test.service": NOSTOP},
        {"test.service": NOSTOP + "ExecReload=\nExecReload=/bin/true\n"},
        active("test.service"),
    ),
}


def lookup(units: dict[str, str]) -> Any:
    parsed = {}
    for name, text in units.items():
        info: dict[str, dict[str, list[str]]] = {}
        switch.parse_systemd_ini(info, text)
        parsed[name] = info
    return parsed.get


@pytest.mark.parametrize("name", ROWS)
def test_decision(name: str) -> None:
    row = ROWS[name]
    jobs = switch.plan(lookup(row.old), lookup(row.new), row.active)
    assert (jobs.stop, jobs.start, jobs.restart, jobs.reload, jobs.skip) == (
        row.stop,
        row.start,
        row.restart,
        row.reload,
        row.skip,
    )


def test_lists_of_an_interrupted_switch_are_finished_by_the_next() -> None:
    recorded = switch.Jobs(start={"a.service"}, restart={"b.service"}, reload={"c.service"})
    jobs = switch.plan(lookup({}), lookup({}), {}, recorded)
    assert (jobs.start, jobs.restart, jobs.reload) == ({"a.service"}, {"b.service"}, {"c.service"})


def test_a_restart_wins_over_a_recorded_reload() -> None:
    recorded = switch.Jobs(reload={"test.service"})
    old, new = {"test.service": NOSTOP}, {"test.service": changed(NOSTOP)}
    jobs = switch.plan(lookup(old), lookup(new), active("test.service"), recorded)
    assert (jobs.restart, jobs.reload) == ({"test.service"}, set())


# main.rs's own unit tests of compare_units.
@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        ({}, {}, "equal"),
        ({"Unit": {}}, {}, "equal"),
        ({"Unit": {"X-Reload-Triggers": ["foobar"]}}, {}, "equal"),
        ({"foobar": {}}, {}, "restart"),
        ({"Mount": {"Options": []}}, {"Mount": {"Options": ["ro"]}}, "reload"),
        ({}, {"Unit": {"X-Reload-Triggers": ["foobar"]}}, "reload"),
        ({"Unit": {"X-Reload-Triggers": ["foobar"]}}, {"Unit": {"X-Reload-Triggers": ["barfoo"]}}, "reload"),
        ({"Mount": {"Type": ["ext4"]}}, {"Mount": {"Type": ["btrfs"]}}, "restart"),
    ],
)
def test_compare_units(current: dict[str, Any], new: dict[str, Any], expected: str) -> None:
    assert switch.compare_units(current, new).value == expected


def test_unit_files_are_parsed_without_unescaping() -> None:
    info: dict[str, dict[str, list[str]]] = {}
    switch.parse_systemd_ini(info, "[Unit]\nAfter=dev-disk-by\\x2dlabel-root.device\n")
    assert info == {"Unit": {"After": ["dev-disk-by\\x2dlabel-root.device"]}}


def test_dry_activate_prints_the_lists_as_nixos_does() -> None:
    jobs = switch.Jobs(
        stop={"b.service", "A.socket"},
        start={"A.socket", "multi-user.target"},
        restart={"c.service"},
        reload={"caddy.service"},
        skip={"d.service"},
        filtered={"multi-user.target"},
    )
    assert switch.dry_activate_lines(jobs) == [
        "would stop the following units: A.socket, b.service",
        "would NOT stop the following changed units: d.service",
        "would activate the configuration...",
        "would reload the following units: caddy.service",
        "would restart the following units: c.service",
        "would start the following units: A.socket",
    ]


def test_lab_unit_files_carry_the_switch_flags_nixos_writes() -> None:
    rendered = pure("labSwitchUnits")
    files = {name: lookup({name: text})(name) for name, text in rendered["files"].items()}
    assert files["noStop"]["Service"] == {"X-StopIfChanged": ["false"]}
    assert files["noRestart"]["Service"] == {"X-RestartIfChanged": ["false"]}
    # reloadIfChanged wins: NixOS writes no X-RestartIfChanged then.
    assert files["reload"]["Service"] == {"X-ReloadIfChanged": ["true"]}
    assert files["notSocketActivated"]["Service"] == {"X-NotSocketActivated": ["true"]}
    assert files["manualOnly"]["Unit"] == {"RefuseManualStop": ["true"], "X-OnlyManualStart": ["true"]}
    assert set(files["triggered"]["Unit"]) == {"X-Reload-Triggers", "X-Restart-Triggers"}
    # The defaults are not written at all.
    assert files["plain"] == {"Unit": {}, "Service": {}}
    assert "[Install]\nWantedBy=multi-user.target\n" in rendered["files"]["plain"]
    assert rendered["links"] == {
        "wants": {"multi-user.target": ["plain"]},
        "requires": {"a.target": ["required"]},
        "upholds": {"b.target": ["required"]},
    }


def test_the_sites_units_decide_as_on_nixos() -> None:
    """gunicorn (stopIfChanged false) restarts alone behind its socket; a site unit left at the default
    would take its socket down with it."""
    service = pure("labUnitFiles")["gunicorn-mysite"]
    old = {"gunicorn-mysite.service": service, "gunicorn-mysite.socket": SOCKET}
    release_two = service.replace("[Service]\n", "[Service]\nEnvironment=RELEASE=2\n")
    new = {"gunicorn-mysite.service": release_two, "gunicorn-mysite.socket": SOCKET}
    running = active("gunicorn-mysite.service", "gunicorn-mysite.socket")
    jobs = switch.plan(lookup(old), lookup(new), running)
    assert (jobs.restart, jobs.stop, jobs.start) == ({"gunicorn-mysite.service"}, set(), set())
    at_default = {name: text.replace("X-StopIfChanged=false\n", "") for name, text in old.items()}
    at_default_new = {name: text.replace("X-StopIfChanged=false\n", "") for name, text in new.items()}
    jobs = switch.plan(lookup(at_default), lookup(at_default_new), running)
    assert jobs.stop == {"gunicorn-mysite.service", "gunicorn-mysite.socket"}
    assert jobs.start == {"gunicorn-mysite.socket"}
