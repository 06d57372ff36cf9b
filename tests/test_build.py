"""Local builds: a failed build shows the part of its log that matters."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from djdeploy.deploy import build
from djdeploy.errors import DjdeployError
from djdeploy.inventory import BuildSpec, Host, SshSettings, Timeouts

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


def test_flake_hosts_build_their_toplevel_in_one_nix_build(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(argv: list[str], *args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        outputs = (
            "/nix/store/" + "a" * 32 + "-nixos-system-prod\n/nix/store/" + "b" * 32 + "-nixos-system-web\n"
        )
        return subprocess.CompletedProcess(argv, 0, outputs, "")

    monkeypatch.setattr("djdeploy.remote.process.run_watching", fake_run)
    prod = Host("prod", "192.0.2.1", SshSettings(), BuildSpec(flake=".#nixosConfigurations.prod"), Timeouts())
    web = Host(
        "web",
        "192.0.2.2",
        SshSettings(),
        BuildSpec(flake="/src#nixosConfigurations.web.config.system.build.toplevel"),
        Timeouts(),
    )
    systems = build.build_systems([prod, web])
    assert calls == [
        [
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "--extra-experimental-features",
            "flakes",
            "build",
            "--no-link",
            "--print-out-paths",
            ".#nixosConfigurations.prod.config.system.build.toplevel",
            "/src#nixosConfigurations.web.config.system.build.toplevel",
        ]
    ]
    assert systems["web"].path.name.endswith("-nixos-system-web")
