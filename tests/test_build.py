"""Local builds: a failed build shows the part of its log that matters."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from djdeploy.deploy import build, nix, platform
from djdeploy.errors import CommandError, DjdeployError
from djdeploy.inventory import BuildSpec, Host, Timeouts
from djdeploy.remote import process
from djdeploy.remote.ssh import SshSettings, SshTarget
from tests.lab.flake import LAB_FLAKE, SOURCES, lab_flake_reference
from tests.lab.helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("nix-build") is None, reason="nix-build is not installed")

FAILING = """\
{
  web1 = derivation {
    name = "failing-site";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" (
      "i=0; while [ $i -lt 200 ]; do echo noise line $i; i=$((i+1)); done; "
      + "echo 'ImportError: no module named shop' >&2; exit 3"
    ) ];
  };
  web2 = derivation {
    name = "working-site";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo ok > $out" ];
  };
}
"""


# No binary cache is reachable here: without this, Nix waits for one before building.
NO_CACHE = (("substituters", ""),)


def host(name: str, file: Path) -> Host:
    spec = BuildSpec(file=file, attribute=name, nix_options=NO_CACHE)
    return Host(name, "192.0.2.1", SshSettings(), spec, Timeouts())


def test_failed_build_names_the_error_not_the_whole_log(tmp_path: Path) -> None:
    expression = tmp_path / "hosts.nix"
    expression.write_text(FAILING)
    with pytest.raises(build.BuildError) as failed:
        build.build_systems([host("web1", expression)])
    message = failed.value.message
    assert "Building the system of web1 failed" in message
    assert "ImportError: no module named shop" in message
    assert "noise line 10\n" not in message
    assert len(message.splitlines()) < 40


def test_hosts_of_one_file_build_in_one_call_showing_what_builds(tmp_path: Path) -> None:
    expression = tmp_path / "hosts.nix"
    # Unique names: nothing is built already.
    marker = str(time.time_ns())
    expression.write_text(
        FAILING.replace("exit 3", "echo fine > $out").replace('-site";', f'-site-{marker}";')
    )
    progress: list[str] = []
    systems = build.build_systems([host("web1", expression), host("web2", expression)], progress.append)
    assert systems["web1"].path.name.endswith(f"-failing-site-{marker}")
    assert (systems["web2"].path).read_text() == "ok\n"
    counts, names = zip(*(line.split(" ", 1) for line in progress), strict=True)
    assert counts == ("1/2", "2/2")
    assert sorted(names) == [f"failing-site-{marker}", f"working-site-{marker}"]


def test_a_host_without_a_build_says_how_to_give_one() -> None:
    bare = Host("web1", "192.0.2.1", SshSettings(), BuildSpec(), Timeouts())
    with pytest.raises(DjdeployError, match=r"build: \{flake: \.#nixosConfigurations\.web1\}"):
        build.build_systems([bare])


def test_flake_hosts_evaluate_their_toplevel_and_build_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    drvs = {
        ".#nixosConfigurations.prod.config.system.build.toplevel.drvPath": "/nix/store/"
        + "c" * 32
        + "-nixos-system-prod.drv",
        "/src#nixosConfigurations.web.config.system.build.toplevel.drvPath": "/nix/store/"
        + "d" * 32
        + "-nixos-system-web.drv",
    }
    store_paths = [
        "/nix/store/" + "a" * 32 + "-nixos-system-prod",
        "/nix/store/" + "b" * 32 + "-nixos-system-web",
    ]

    def fake_run(argv: list[str], *args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, drvs[argv[-1]], "")

    def fake_realise(argv: list[str], *args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "\n".join(store_paths) + "\n", "")

    def fake_output(argv: list[str], *args: object, **kwargs: object) -> str:
        calls.append(argv)
        return "x86_64-linux\nx86_64-linux"

    monkeypatch.setattr("djdeploy.remote.process.run", fake_run)
    monkeypatch.setattr("djdeploy.remote.process.run_watching", fake_realise)
    monkeypatch.setattr("djdeploy.remote.process.output", fake_output)
    monkeypatch.setattr("djdeploy.deploy.nix.require_supported_version", lambda: None)
    monkeypatch.setattr(platform, "local", lambda: platform.Platforms("x86_64-linux"))
    prod = Host(
        "prod",
        "192.0.2.1",
        SshSettings(),
        BuildSpec(flake=".#nixosConfigurations.prod", nix_options=(("max-jobs", "auto"),)),
        Timeouts(),
    )
    web = Host(
        "web",
        "192.0.2.2",
        SshSettings(),
        BuildSpec(
            flake="/src#nixosConfigurations.web.config.system.build.toplevel",
            nix_options=(("max-jobs", "auto"),),
        ),
        Timeouts(),
    )
    systems = build.build_systems([prod, web])
    evaluate = [*nix.NIX_COMMAND, "eval", "--raw", "--option", "max-jobs", "auto"]
    assert calls == [
        [*evaluate, ".#nixosConfigurations.prod.config.system.build.toplevel.drvPath"],
        [*evaluate, "/src#nixosConfigurations.web.config.system.build.toplevel.drvPath"],
        ["nix-store", "--query", "--binding", "system", *drvs.values()],
        ["nix-store", "--realise", "--option", "max-jobs", "auto", *drvs.values()],
    ]
    assert systems["prod"].path == Path(store_paths[0])
    assert systems["web"].path == Path(store_paths[1])


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("nix (Nix) 2.8.0\n", (2, 8)),
        ("nix (Nix) 2.26.3", (2, 26)),
        ("nix (Nix) 2.8pre20220311_d532269\n", (2, 8)),
        ("nix (Lix, like Nix) 2.91.1\nSystem type: x86_64-linux\n", (2, 91)),
        ("nix (Determinate Nix 3.0.0) 2.26.3", (2, 26)),
        ("nix (Nix) 2.3.7", (2, 3)),
        ("something else", None),
        ("", None),
    ],
)
def test_the_nix_version_is_read_from_nix_version(output: str, version: tuple[int, int] | None) -> None:
    assert nix.parse_version(output) == version


@pytest.mark.parametrize("output", ["nix (Nix) 2.8.0", "nix (Nix) 2.26.3", "nix (Nix) 3.0"])
def test_nix_from_2_8_on_is_accepted(output: str) -> None:
    nix.check_version(output)


def test_an_older_nix_is_refused_naming_the_version_and_the_way_out() -> None:
    with pytest.raises(DjdeployError) as refused:
        nix.check_version("nix (Nix) 2.3.7\n")
    message = refused.value.message
    assert "needs Nix 2.8 or newer" in message
    assert "'nix (Nix) 2.3.7'" in message
    assert "nix-bin" in message
    assert "\n" not in message


def test_an_unreadable_version_is_refused() -> None:
    with pytest.raises(DjdeployError, match="says 'nothing'"):
        nix.check_version("")


def test_the_local_nix_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def fake_output(argv: list[str], **kwargs: object) -> str:
        asked.append(argv)
        return "nix (Nix) 2.8.0"

    monkeypatch.setattr("djdeploy.remote.process.output", fake_output)
    nix.require_supported_version.cache_clear()
    try:
        nix.require_supported_version()
        nix.require_supported_version()
    finally:
        nix.require_supported_version.cache_clear()
    assert asked == [["nix", "--version"]]


@pytest.mark.skipif(os.geteuid() != 0, reason="cutting the network off (unshare --net) needs root")
def test_the_lab_flake_builds_the_lab_systems_offline_and_changes_nothing_in_the_tree() -> None:
    """The lab flake (nix/lab/flake.nix, no inputs) gives exactly hosts.nix's systems, without network,
    flake.lock or any other change to the git tree."""
    reference = lab_flake_reference("lab2")
    before = _git_status()
    drv = subprocess.run(
        [
            "unshare",
            "--net",
            *nix.NIX_COMMAND,
            "eval",
            "--raw",
            f"{reference}.config.system.build.toplevel.drvPath",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert drv.returncode == 0, drv.stderr
    from_file = subprocess.run(
        ["nix-instantiate", str(LAB_FLAKE / "hosts.nix"), "-A", "lab2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.strip()
    assert drv.stdout == from_file
    assert not (LAB_FLAKE / "flake.lock").exists()
    assert _git_status() == before


def _git_status() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", *SOURCES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_copy_to_a_full_host_says_its_disk_is_full_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    output = "copying path '/nix/store/abc-site'\nerror: writing to file: No space left on device\n"

    def full_host(argv: list[str], on_line: object, **options: object) -> str:
        raise CommandError(argv, 1, output)

    monkeypatch.setattr(process, "stream", full_host)
    target = SshTarget("web1", "192.0.2.1", SshSettings())
    with pytest.raises(nix.HostDiskFull) as refused:
        nix.copy_closure(target, Path("/nix/store/abc-system"))
    message = refused.value.message
    assert "web1" in message
    assert "disk is full" in message
    assert "Nothing was switched" in message
    assert "nix-collect-garbage" in message
    assert "\n" not in message
