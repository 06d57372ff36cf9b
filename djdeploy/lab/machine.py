"""One lab host's life: overlay root, SSH keys, boot with systemd-nspawn, power off, reboot, clean up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.lab import cgroups, network
from djdeploy.lab.layout import LabHost, LabLayout
from djdeploy.remote import process
from djdeploy.remote.ssh import Remote, SshSettings, SshTarget, port_open

BOOT_TIMEOUT = 90.0
POWEROFF_TIMEOUT = 20.0


def ssh_target(layout: LabLayout, host: LabHost, user: str = "root") -> SshTarget:
    return SshTarget(
        host.name,
        host.address,
        SshSettings(user=user, known_hosts=layout.known_hosts, identity=layout.client_key),
    )


def ensure_client_key(layout: LabLayout) -> None:
    if not layout.client_key.exists():
        layout.state_dir.mkdir(parents=True, exist_ok=True)
        process.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "djdeploy-lab",
                "-f",
                str(layout.client_key),
            ]
        )


def prepare(layout: LabLayout, host: LabHost, image: Path) -> str:
    """Mount a fresh overlay on the image; give the host its name, keys and network; return its key line."""
    for directory in (host.upper, host.work, host.root):
        directory.mkdir(parents=True, exist_ok=True)
    process.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={image},upperdir={host.upper},workdir={host.work}",
            str(host.root),
        ]
    )
    root = host.root
    (root / "etc" / "hostname").write_text(f"{host.name}\n")
    (root / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host.name}\n::1 localhost\n")
    host_key = root / "etc" / "ssh" / "ssh_host_ed25519_key"
    process.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(host_key)])
    client_public_key = layout.client_key.with_suffix(".pub").read_text()
    _authorize(root, "root", client_public_key)
    _authorize(root, "deploy", client_public_key)
    network.create(host)
    network.join_lan(layout, host)
    key_type, key_data = host_key.with_suffix(".pub").read_text().split()[:2]
    return f"{host.address} {key_type} {key_data}"


def _authorize(root: Path, user: str, public_key: str) -> None:
    entry = next(
        line.split(":")
        for line in (root / "etc" / "passwd").read_text().splitlines()
        if line.startswith(f"{user}:")
    )
    uid, gid, home = int(entry[2]), int(entry[3]), entry[5]
    ssh_dir = root / home.lstrip("/") / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key)
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        os.chown(path, uid, gid)


def boot(layout: LabLayout, host: LabHost) -> int:
    """Start systemd-nspawn with real systemd as PID 1 inside the host's namespace; return its PID."""
    cgroup_procs = cgroups.create(host.netns)
    with host.console_log.open("wb") as log:
        nspawn = subprocess.Popen(
            [
                *cgroups.join_then_exec(cgroup_procs),
                "systemd-nspawn",
                "--quiet",
                f"--directory={host.root}",
                f"--machine={host.name}",
                "--boot",
                "--register=no",
                "--keep-unit",
                f"--network-namespace-path=/run/netns/{host.netns}",
                "--console=read-only",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
                *([f"--bind-ro={layout.wheel_cache}"] if layout.wheel_cache.is_dir() else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host.pid_file.write_text(f"{nspawn.pid}\n")
    return nspawn.pid


def wait_until_running(layout: LabLayout, host: LabHost, pid: int) -> None:
    """Wait, bounded, for sshd to answer and systemd to finish booting."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not port_open(host.address, 22, timeout=1.0):
        if not _alive(pid):
            raise DjdeployError(f"{host.name} stopped while booting. Its console: {host.console_log}")
        if time.monotonic() > deadline:
            raise DjdeployError(
                f"{host.name} did not open SSH within {BOOT_TIMEOUT:.0f} s. Console: {host.console_log}"
            )
        time.sleep(0.2)
    with Remote(ssh_target(layout, host)) as remote:
        remaining = max(5.0, deadline - time.monotonic())
        state = remote.run(
            ["systemctl", "is-system-running", "--wait"], check=False, timeout=remaining
        ).stdout.strip()
        if state == "degraded":
            # Booting several containers at once on a loaded machine now and then fails a unit that
            # only records boot bookkeeping; one more try settles it, a real fault fails again.
            failed = remote.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
            units = [line.split()[0] for line in failed.splitlines() if line.strip()]
            remote.run(["systemctl", "restart", *units], check=False, timeout=30)
            state = remote.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        if state != "running":
            failed = remote.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
            raise DjdeployError(f"{host.name} booted as '{state}', not 'running'. Failed units:\n{failed}")


def nspawn_pids(layout: LabLayout, host: LabHost | None = None) -> list[int]:
    """PIDs of systemd-nspawn processes running a lab host (one host, or any)."""
    marker = str(host.root if host else layout.hosts_dir)
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and Path(argv[0].decode(errors="replace")).name == "systemd-nspawn"
            and any(arg.decode(errors="replace").startswith(f"--directory={marker}") for arg in argv)
        ):
            pids.append(int(proc.name))
    return pids


def power_off(layout: LabLayout, host: LabHost) -> None:
    """Stop the container cleanly (SIGTERM makes systemd shut down); kill it if it does not stop in time."""
    terminate(nspawn_pids(layout, host), POWEROFF_TIMEOUT)


def terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM the processes, and SIGKILL those that have not stopped within timeout seconds."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)


def reboot(layout: LabLayout, host: LabHost, *, power_loss: bool = False) -> None:
    """Power the host off cleanly and boot it again on the same disk (its overlay's upper directory).

    Only /run is lost, as on a real reboot: the host comes up on the system its boot default names.
    power_loss: no shutdown at all, every process of the host killed at once, as when its power is cut.
    """
    if not power_loss:
        power_off(layout, host)
    cgroups.kill_and_remove(host.netns)
    pid = boot(layout, host)
    wait_until_running(layout, host, pid)


def lab_mounts(layout: LabLayout) -> list[Path]:
    """Mount points below the lab's host directories, deepest first."""
    prefix = str(layout.hosts_dir) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point.startswith(prefix):
            mounts.append(Path(mount_point))
    return sorted(mounts, key=lambda path: len(path.parts), reverse=True)


def image_of(host: LabHost) -> Path | None:
    """The image a host's overlay root lies on (the lower directory of its mount), None without one."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _device, mount_point, kind, options = line.split()[:4]
        if kind == "overlay" and mount_point.replace("\\040", " ") == str(host.root):
            for option in options.split(","):
                if option.startswith("lowerdir="):
                    return Path(option.removeprefix("lowerdir="))
    return None


# Passes of removing a host's files before its removal fails.
REMOVE_ATTEMPTS = 3


def remove(layout: LabLayout, host: LabHost) -> None:
    """Power the host off and remove everything it had: processes, mounts, network, files."""
    power_off(layout, host)
    cgroups.kill_and_remove(host.netns)
    host_prefix = str(host.directory) + "/"
    for mount in lab_mounts(layout):
        if str(mount).startswith(host_prefix) or mount == host.root:
            process.run(["umount", "--lazy", str(mount)])
    network.remove(host)
    remove_files = ["rm", "-rf", "--one-file-system", str(host.directory)]
    # A lazily unmounted overlay can still be letting go of its last files: a second pass, a moment later.
    for _ in range(REMOVE_ATTEMPTS - 1):
        if process.run(remove_files, check=False).returncode == 0:
            return
        time.sleep(1)
    process.run(remove_files)


def running(layout: LabLayout, host: LabHost) -> bool:
    return bool(nspawn_pids(layout, host))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of ours still answers kill(0): reap it.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return finished == 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
