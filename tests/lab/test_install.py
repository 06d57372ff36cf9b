"""scripts/install.sh on machines that never saw Nix or djdeploy: pristine Debian roots made by debootstrap.

Each test runs the script in a throwaway overlay of a cached pristine root (Debian 12 and 13), inside
systemd-nspawn with the machine's network, so that nothing this machine already has can hide a missing step.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from djdeploy.lab.layout import LabLayout

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
SUITES = ("bookworm", "trixie")
# A derivation that needs nothing but /bin/sh: what "Nix can build as root" means without nixpkgs.
PROBE_DERIVATION = (
    'derivation { name = "install-probe"; system = builtins.currentSystem; builder = "/bin/sh";'
    ' args = [ "-c" "echo built-by-$(/usr/bin/id -un) > $out" ]; }'
)


def pristine_root(suite: str) -> Path:
    """A minimal Debian root of that release, made once and kept beside the lab image."""
    cache = LabLayout.from_environment().cache_dir
    root = cache / f"pristine-{suite}"
    if (root / "etc" / "os-release").exists():
        return root
    building = cache / f"pristine-{suite}.building"
    shutil.rmtree(building, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", suite, str(building)],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    building.rename(root)
    return root


@pytest.fixture(params=SUITES)
def machine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The merged root of a fresh overlay over a pristine root, with no Nix build group."""
    lower = pristine_root(request.param)
    upper, work, merged = (tmp_path / name for name in ("upper", "work", "merged"))
    for directory in (upper, work, merged):
        directory.mkdir()
    layers = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", layers, str(merged)], check=True)
    try:
        assert "nixbld" not in (merged / "etc" / "group").read_text()
        # The script runs from a copy of the project's tracked files, as a clone would give them.
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, check=True, capture_output=True)
        project = merged / "root" / "djdeploy"
        project.mkdir(parents=True)
        subprocess.run(["tar", "-x", "-C", project], input=archive.stdout, check=True)
        shutil.copy2(REPO / "scripts" / "install.sh", project / "scripts" / "install.sh")
        # Certificate authorities this machine added for its network (a proxy's, say) go along, as they would
        # on a new machine of the same network; the Debian ones come with the ca-certificates package.
        local_authorities = Path("/usr/local/share/ca-certificates")
        if local_authorities.is_dir():
            copy = merged / local_authorities.relative_to("/")
            shutil.copytree(local_authorities, copy, dirs_exist_ok=True)
        yield merged
    finally:
        subprocess.run(["umount", "--lazy", merged], check=False)


def inside(root: Path, *argv: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    """Run a command as root in the machine, with this machine's network (for apt and pip)."""
    return subprocess.run(
        [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--as-pid2",
            "-D",
            str(root),
            "--setenv=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def must(result: subprocess.CompletedProcess[str]) -> str:
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"exit {result.returncode}:\n{output}"
    return result.stdout


def test_install_on_a_machine_that_never_had_nix(machine: Path) -> None:
    # The system part alone lets root build with Nix.
    must(inside(machine, "bash", "/root/djdeploy/scripts/install.sh", "--system"))
    nix_conf = (machine / "etc" / "nix" / "nix.conf").read_text()
    assert "build-users-group = nixbld" in nix_conf
    groups = (machine / "etc" / "group").read_text().splitlines()
    group_line = next(line for line in groups if line.startswith("nixbld:"))
    assert group_line.split(":")[3].split(",") == [f"nixbld{number}" for number in range(1, 11)]
    build = inside(
        machine, "nix-build", "--no-out-link", "--option", "substituters", "", "-E", PROBE_DERIVATION
    )
    # systemd-nspawn hands the command's standard error to the same pipe: the path is the last line.
    out = must(build).strip().splitlines()[-1]
    assert out.startswith("/nix/store/")
    # Built by one of the build users the script made, not by root itself.
    assert (machine / out.lstrip("/")).read_text().strip().startswith("built-by-nixbld")

    # The whole set-up, run again over it: the system part changes nothing, and djdeploy installs although
    # the system Python refuses pip outside a virtual environment (PEP 668).
    must(inside(machine, "bash", "/root/djdeploy/scripts/install.sh"))
    assert (machine / "etc" / "nix" / "nix.conf").read_text() == nix_conf
    assert group_line in (machine / "etc" / "group").read_text().splitlines()
    version = must(inside(machine, "djdeploy", "--version"))
    assert "djdeploy" in version.lower()
    listing = must(inside(machine, "--chdir=/root/djdeploy", "inv", "--list"))
    assert "deploy" in listing
    assert "lab.demo" in listing
