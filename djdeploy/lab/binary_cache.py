"""The lab's binary cache: a signed `file://` store on this machine, served over HTTP by a Caddy that listens
only on this machine's end of lab1's veth pair, and the hosts' nix.conf that trusts it.

Every lab host's default route leads to this machine, so the one address serves them all, each host's
requests arriving over its own veth pair; lab1 runs whenever any lab host does (lab.up boots lab1..labN).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.lab import machine
from djdeploy.lab.layout import LabHost, LabLayout
from djdeploy.remote import process
from djdeploy.remote.ssh import port_open

PORT = 7431
# A current Caddy, built as the lab hosts' own (nix/lab/packages.nix).
LAB_PACKAGES = Path(__file__).resolve().parents[2] / "nix" / "lab" / "packages.nix"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

CADDYFILE = """\
{{
	admin off
	persist_config off
	auto_https off
	storage file_system {directory}/caddy-data
}}

http://:{port} {{
	bind {address}
	root * {store}
	file_server
	log {{
		output file {directory}/access.log
		format json
	}}
}}
"""


def directory(layout: LabLayout) -> Path:
    return layout.state_dir / "binary-cache"


def store(layout: LabLayout) -> Path:
    return directory(layout) / "store"


def secret_key(layout: LabLayout) -> Path:
    return directory(layout) / "key.sec"


def public_key_file(layout: LabLayout) -> Path:
    return directory(layout) / "key.pub"


def access_log(layout: LabLayout) -> Path:
    """Caddy's access log: one JSON line per request, with the client's address and the bytes sent."""
    return directory(layout) / "access.log"


def _pid_file(layout: LabLayout) -> Path:
    return directory(layout) / "caddy.pid"


def _caddyfile(layout: LabLayout) -> Path:
    return directory(layout) / "Caddyfile"


def address(layout: LabLayout) -> str:
    """This machine's end of lab1's veth pair: the only address Caddy listens on."""
    return layout.host(1).gateway


def url(layout: LabLayout) -> str:
    """The URL the lab hosts substitute from."""
    return f"http://{address(layout)}:{PORT}"


def key_name(layout: LabLayout) -> str:
    return f"djdeploy-lab{layout.instance}-cache-1"


def configured(layout: LabLayout) -> bool:
    """Whether the lab has a cache (lab.up --cache made its key; lab.down removes it)."""
    return secret_key(layout).is_file()


def running(layout: LabLayout) -> bool:
    return _caddy_pid(layout) is not None


def inventory_section(layout: LabLayout) -> dict[str, str]:
    """The inventory's `cache`: this machine writes the file store, the hosts read it over HTTP."""
    return {
        "push": f"file://{store(layout)}?compression=zstd",
        "substitute": url(layout),
        "signing_key": str(secret_key(layout)),
        "public_key": public_key_file(layout).read_text().strip(),
    }


def ensure(layout: LabLayout) -> None:
    """Make the key pair and the store the first time, and start Caddy unless it runs."""
    if running(layout):
        return
    directory(layout).mkdir(parents=True, exist_ok=True)
    store(layout).mkdir(exist_ok=True)
    if not configured(layout):
        process.run(
            [
                "nix-store",
                "--generate-binary-cache-key",
                key_name(layout),
                str(secret_key(layout)),
                str(public_key_file(layout)),
            ]
        )
        secret_key(layout).chmod(0o600)
    _start_caddy(layout)


def caddyfile_text(layout: LabLayout) -> str:
    """Caddy's configuration: the store's files, on the one address, with no admin endpoint or TLS."""
    here = directory(layout)
    return CADDYFILE.format(directory=here, port=PORT, address=address(layout), store=store(layout))


def _start_caddy(layout: LabLayout) -> None:
    caddy = Path(
        process.output(
            ["nix-build", str(LAB_PACKAGES), "-A", "caddy", "--no-out-link", "--option", "substituters", ""],
            timeout=900,
        ).strip()
    )
    here = directory(layout)
    _caddyfile(layout).write_text(caddyfile_text(layout))
    # Caddy keeps its state under HOME and the XDG directories: all of it stays in the cache's directory.
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(here), "XDG_DATA_HOME": str(here / "caddy-data")}
    environment["XDG_CONFIG_HOME"] = str(here / "caddy-config")
    with (here / "caddy.log").open("ab") as log:
        caddy_process = subprocess.Popen(
            [
                str(caddy / "bin" / "caddy"),
                "run",
                "--config",
                str(_caddyfile(layout)),
                "--adapter",
                "caddyfile",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=here,
            start_new_session=True,
        )
    _pid_file(layout).write_text(f"{caddy_process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while not port_open(address(layout), PORT, timeout=1.0):
        if caddy_process.poll() is not None or time.monotonic() > deadline:
            stop(layout)
            raise DjdeployError(
                f"The lab's binary cache (Caddy on {address(layout)}:{PORT}) did not start; its log is "
                f"{here / 'caddy.log'}. Free the port, or run `djdeploy lab.down`, then `lab.up --cache`."
            )
        time.sleep(0.1)


def _caddy_pid(layout: LabLayout) -> int | None:
    """The PID of this lab's Caddy, checked against its command line (a PID file may outlive its process)."""
    try:
        pid = int(_pid_file(layout).read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(_caddyfile(layout)).encode() in argv else None


def stop(layout: LabLayout) -> None:
    """Stop Caddy and remove the store, the key pair and Caddy's files: nothing of the cache is left."""
    pid = _caddy_pid(layout)
    if pid is not None:
        machine.terminate([pid], STOP_TIMEOUT)
    process.run(["rm", "-rf", "--one-file-system", str(directory(layout))])


def configure_host(layout: LabLayout, host: LabHost) -> None:
    """Trust the cache's key and substitute from it in the host's nix.conf, as NixOS writes
    nix.settings.substituters and trusted-public-keys there (`nixConf` in nixos/modules/config/nix.nix:
    one `key = value` line each, a list's items separated by spaces)."""
    nix_conf = host.root / "etc" / "nix" / "nix.conf"
    settings = {
        "substituters": url(layout),
        "trusted-public-keys": public_key_file(layout).read_text().strip(),
    }
    nix_conf.write_text(with_settings(nix_conf.read_text(), settings))


def with_settings(nix_conf: str, settings: dict[str, str]) -> str:
    """nix.conf's text with each of settings set to its value (replacing a line of the same key)."""
    kept = [line for line in nix_conf.splitlines() if line.split("=", 1)[0].strip() not in settings]
    return "\n".join([*kept, *(f"{key} = {value}" for key, value in settings.items())]) + "\n"
