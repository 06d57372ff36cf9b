"""The lab's Debian image: built once with debootstrap, cached outside the repository by its recipe's hash."""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from djdeploy.errors import DjdeployError
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import process

SUITE = "bookworm"
# The lab builds sites with this machine's /usr/bin/python3 (nix/lab/packages.nix) and its hosts run them with
# their own: both must be the Python of the image's Debian release.
BUILD_PYTHON = "/usr/bin/python3"
HOST_PYTHON_VERSION = "3.11"
BOOTSTRAP_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2")
# What a deployed site needs at run time that a lab closure cannot carry: the database server, the
# interpreter the site's wrapper runs (Debian 12's python3 3.11), Nix to receive closures, sudo for
# non-root deploys, curl for health checks from inside the host. pip: a host builds systems as the deployer
# does (`build.on`), installing wheels with it (openssh-server brings the client that copies them on).
RUNTIME_PACKAGES = (
    "nix-bin",
    "postgresql",
    "python3",
    "python3-pip",
    "sudo",
    "curl",
    "ca-certificates",
    "procps",
    "less",
)

# Runs inside the new root file system (chroot) after the packages are installed.
CONFIGURE_SCRIPT = r"""
set -eu
# Each host gets its own SSH host keys when it is created.
rm -f /etc/ssh/ssh_host_*
sed -i 's/^#\?PasswordAuthentication .*/PasswordAuthentication no/' /etc/ssh/sshd_config
mkdir -p /root/.ssh && chmod 700 /root/.ssh
# NixOS's layout for system generations.
mkdir -p /nix/var/nix/profiles /nix/var/nix/gcroots /etc/nix
cat > /etc/nix/nix.conf <<'NIXCONF'
sandbox = false
substituters =
build-users-group =
experimental-features = nix-command
NIXCONF
# Users that activations create (caddy, the sites) get ids from 2000 up: the hosts share the kernel's user
# ids with this machine, where Nix kills every process of a build user (uids near 999) around each build.
sed -i -e 's/^#\?SYS_UID_MIN.*/SYS_UID_MIN 2000/' -e 's/^#\?SYS_UID_MAX.*/SYS_UID_MAX 2999/' \
    -e 's/^#\?SYS_GID_MIN.*/SYS_GID_MIN 2000/' -e 's/^#\?SYS_GID_MAX.*/SYS_GID_MAX 2999/' /etc/login.defs
grep -q '^SYS_UID_MIN 2000' /etc/login.defs
# A non-root account that deploys through sudo with a password (lab only).
useradd --create-home --shell /bin/bash --groups sudo deploy
echo 'deploy:lab-deploy-password' | chpasswd
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
# Units that only slow a container's boot down or reach for the network, and the static /dev nodes
# that systemd-nspawn already provides (creating them races with nspawn and fails now and then).
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    systemd-networkd-wait-online.service console-getty.service getty@.service \
    systemd-tmpfiles-setup-dev.service systemd-update-utmp.service systemd-update-utmp-runlevel.service \
    2>/dev/null || true
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/*
"""

RECIPE_VERSION = "1"


@dataclass(frozen=True)
class ImageRecipe:
    """A Debian release as the lab's hosts run it; its Python is the one sites built for it run with."""

    suite: str
    release: str
    python_version: str
    runtime_packages: tuple[str, ...] = RUNTIME_PACKAGES

    def hash(self) -> str:
        """A short hash of everything that decides the image's content."""
        recipe = "\n".join(
            [
                RECIPE_VERSION,
                self.suite,
                *BOOTSTRAP_PACKAGES,
                "--",
                *self.runtime_packages,
                "--",
                CONFIGURE_SCRIPT,
            ]
        )
        return hashlib.sha256(recipe.encode()).hexdigest()[:16]


# The image every lab host boots unless its project needs another Python, and the one whose Python (3.13,
# the python3 of current NixOS) such projects get.
DEBIAN_12 = ImageRecipe(SUITE, "Debian 12", HOST_PYTHON_VERSION)
DEBIAN_13 = ImageRecipe("trixie", "Debian 13", "3.13")
RECIPES = (DEBIAN_12, DEBIAN_13)


def image_path(layout: LabLayout, recipe: ImageRecipe = DEBIAN_12) -> Path:
    return layout.cache_dir / f"image-{recipe.hash()}"


def ensure_image(layout: LabLayout, console: Console, recipe: ImageRecipe = DEBIAN_12) -> Path:
    """Return the cached image, building it first when it is missing or its recipe changed."""
    image = image_path(layout, recipe)
    if (image / "etc" / "os-release").exists():
        return image
    layout.cache_dir.mkdir(parents=True, exist_ok=True)
    building = image.with_name(image.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    started = time.monotonic()
    try:
        with console.status(
            f"Building the lab image with debootstrap ({recipe.suite}); this takes a few minutes"
        ):
            _build(building, recipe)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    building.rename(image)
    current = {image_path(layout, each) for each in RECIPES}
    for stale in layout.cache_dir.glob("image-*"):
        if stale not in current:
            shutil.rmtree(stale, ignore_errors=True)
    console.print(f"Built the lab image in {time.monotonic() - started:.0f} s: {image}")
    return image


def _build(root: Path, recipe: ImageRecipe) -> None:
    process.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BOOTSTRAP_PACKAGES)}",
            recipe.suite,
            str(root),
        ],
        timeout=1800,
        hint="debootstrap needs Debian's package mirror; check `apt-get update` works on this machine.",
    )
    shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
    chroot_env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    process.run(["chroot", str(root), "apt-get", "update", "-qq"], env=chroot_env, timeout=600)
    process.run(
        [
            "chroot",
            str(root),
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *recipe.runtime_packages,
        ],
        env=chroot_env,
        timeout=1800,
    )
    script = root / "root" / "configure-lab-image.sh"
    script.write_text(CONFIGURE_SCRIPT)
    process.run(["chroot", str(root), "/bin/sh", "/root/configure-lab-image.sh"], env=chroot_env, timeout=300)
    script.unlink()
    (root / "etc" / "resolv.conf").unlink()


def require_image_tools() -> None:
    if shutil.which("debootstrap") is None:
        raise DjdeployError(
            "debootstrap is not installed, so the lab image cannot be built. "
            "Install it with `apt-get install debootstrap` and run the task again."
        )


def require_host_python(build_python: str = BUILD_PYTHON) -> None:
    """Refuse a machine whose Python differs from the hosts': the sites it builds would not run on them."""
    try:
        version = process.run(
            [build_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=30
        ).stdout.strip()
    except DjdeployError:
        version = ""
    if version != HOST_PYTHON_VERSION:
        found = f"Python {version}" if version else "missing"
        raise DjdeployError(
            f"The lab's hosts run Debian 12 ({SUITE}) and its Python {HOST_PYTHON_VERSION}, and the lab "
            f"builds their sites with this machine's {build_python}, which is {found} here. The lab runs "
            f"on a Debian 12 machine (or one whose {build_python} is Python {HOST_PYTHON_VERSION}); "
            "deploying to real NixOS servers works from any machine, as their Python comes from nixpkgs."
        )
