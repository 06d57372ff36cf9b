"""End to end: `inv deploy`, `inv rollback` and `inv unlock` against real lab hosts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from djdeploy import inventory
from djdeploy.host import paths as host_paths
from djdeploy.lab import machine
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import REPO, inv, write_inventory

pytestmark = pytest.mark.lab

# A WSGI module that does not exist, and what gunicorn says of it.
MISSING_MODULE = '"example_site.config.missing"'
# The end of gunicorn's traceback (gunicorn then repeats the message alone, without the exception's name).
MISSING_MODULE_ERROR = "ModuleNotFoundError: No module named 'example_site.config.missing'"
# The lab image's `deploy` account (a member of sudo) has this password.
LAB_SUDO_PASSWORD = "lab-deploy-password"


LAB_HOSTS = 3


def release_source(workspace: Path, release: str) -> Path:
    """A copy of the example project showing another release: a second build of the site."""
    source = workspace / f"example-{release}"
    if not source.exists():
        shutil.copytree(REPO / "example", source, ignore=shutil.ignore_patterns("__pycache__"))
        module = source / "example_site" / "release.py"
        module.write_text(module.read_text().replace('RELEASE = "1.0.0"', f'RELEASE = "{release}"'))
    return source


def release_inventory(lab: LabLayout, workspace: Path, release: str) -> Path:
    """An inventory whose lab1 runs the example site as another release."""
    return write_inventory(
        lab, workspace, f"release-{release}", exampleSource=str(release_source(workspace, release))
    )


def start_deploy(inventory_path: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """`inv deploy` to lab1, running in the background."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "deploy",
            "--inventory",
            str(inventory_path),
            "--host",
            "lab1",
            *args,
        ],
        cwd=REPO,
        text=True,
        **popen,
    )


def deploy(inventory_path: Path, *args: str, host: str = "lab1") -> subprocess.CompletedProcess[str]:
    return inv("deploy", "--inventory", str(inventory_path), "--host", host, *args, check=False)


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, as one line of words: the error's box wraps long lines."""
    return " ".join((result.stdout + result.stderr).replace("│", " ").split())


def lab1(inventory_path: Path) -> inventory.Host:
    return inventory.load(inventory_path).hosts["lab1"]


def page(host: inventory.Host) -> str:
    return probe.request(host.address, "example.lab", verify=False).body


def generation(host: inventory.Host) -> str:
    with Remote(host.ssh_target) as remote:
        return remote.run(["readlink", host_paths.SYSTEM_PROFILE]).stdout.strip()


def deploy_log(host: inventory.Host) -> list[dict[str, object]]:
    with Remote(host.ssh_target) as remote:
        lines = remote.run(["cat", host_paths.DEPLOY_LOG], check=False).stdout.splitlines()
    return [json.loads(line) for line in lines]


def test_first_deploy_serves_the_site_and_records_it(first: Path) -> None:
    host = lab1(first)
    assert 'id="release">1.0.0<' in page(host)
    assert generation(host) == "system-1-link"
    [entry] = deploy_log(host)
    assert entry["outcome"] == "success"
    assert entry["generation"] == 1
    assert {"user", "commit", "started", "finished", "system"} <= set(entry)


def test_unchanged_redeploy_copies_and_switches_nothing(first: Path) -> None:
    result = deploy(first)
    assert result.returncode == 0, result.stderr
    assert "health check" in result.stdout
    assert "Nothing changed: lab1 already runs" in said(result)
    assert "and it is healthy" in said(result)
    assert "copy the closure" not in result.stdout
    assert generation(lab1(first)) == "system-1-link"


def test_dry_run_shows_the_change_and_switches_nothing(lab: LabLayout, workspace: Path, first: Path) -> None:
    changed = write_inventory(
        lab, workspace, "dry-run", exampleSource=str(release_source(workspace, "1.5.0"))
    )
    result = deploy(changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would copy" in result.stdout
    assert "would restart or reload gunicorn-example.service" in result.stdout
    host = lab1(first)
    assert generation(host) == "system-1-link"
    assert 'id="release">1.0.0<' in page(host)


def test_changed_site_is_deployed_and_rolled_back_by_hand(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    changed = release_inventory(lab, workspace, "2.0.0")
    result = deploy(changed, "--verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify (named checks of the deployed state)" in result.stdout
    host = lab1(changed)
    assert 'id="release">2.0.0<' in page(host)
    assert generation(host) == "system-2-link"
    # From a directory outside any git work tree: this machine's commit is unknown ("-") there.
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    rollback = subprocess.run(
        [*invoke, "rollback", "--inventory", str(changed), "--host", "lab1"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert 'id="release">1.0.0<' in page(host)
    assert generation(host) == "system-1-link"
    records = deploy_log(host)
    first_deploy = next(r for r in records if r["action"] == "deploy" and r["generation"] == 1)
    assert first_deploy["commit"] != "-"
    # The rollback records the commit generation 1 was deployed from.
    assert (records[-1]["action"], records[-1]["commit"]) == ("rollback", first_deploy["commit"])


def test_release_whose_gunicorn_cannot_start_is_rolled_back(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    broken = write_inventory(lab, workspace, "broken-gunicorn", wsgiModule=MISSING_MODULE)
    host = lab1(broken)
    before = generation(host)
    # Twice: the second deploy shows its own activation's error, not the first one's too.
    for _ in range(2):
        result = deploy(broken)
        assert result.returncode == 1
        assert "rolled back to generation" in result.stderr
        assert "Deployed" not in result.stdout
        assert generation(host) == before
        assert 'id="release">1.0.0<' in page(host)
        assert deploy_log(host)[-1]["outcome"] == "rolled back"
        text = said(result)
        # gunicorn's own error, once, then where to see more; no other unit's journal.
        assert text.count(MISSING_MODULE_ERROR) == 1, text
        assert text.count("The end of its journal") == 1, text
        assert (
            "gunicorn-example.service failed: gunicorn could not import the WSGI application: there is no "
            "module 'example_site.config.missing' on the site's path" in text
        )
        assert "More with `djdeploy logs lab1 --site example`." in text
        assert text.index(MISSING_MODULE_ERROR) < text.index("djdeploy logs lab1 --site example")


def test_a_failed_first_deploy_run_again_reports_the_host_unhealthy(lab: LabLayout, workspace: Path) -> None:
    broken = write_inventory(lab, workspace, "broken-first", number=2, wsgiModule=MISSING_MODULE)
    failed = deploy(broken, host="lab2")
    assert failed.returncode == 1
    assert "there is no earlier generation to roll back to" in said(failed)
    assert said(failed).count(MISSING_MODULE_ERROR) == 1
    again = deploy(broken, host="lab2")
    assert again.returncode == 1, again.stdout + again.stderr
    text = said(again)
    assert "Nothing changed" not in text
    assert "lab2 already runs" in text
    assert "but it is unhealthy:" in text
    assert "gunicorn-example.service is failed" in text
    assert "https://example.lab/healthz answered 502, expected 200" in text
    assert "`djdeploy logs lab2 --site example`" in text
    assert "copy the closure" not in again.stdout  # nothing deployed


def test_release_whose_health_check_fails_is_rolled_back(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    unhealthy = write_inventory(lab, workspace, "failing-health", healthCheckPath='"/no-such-page"')
    host = lab1(unhealthy)
    before = generation(host)
    result = deploy(unhealthy)
    assert result.returncode == 1
    assert "because the health check failed" in result.stderr
    assert "answered 404, expected 200" in result.stderr
    assert "✗ health check" in result.stdout
    assert "✓ health check" not in result.stdout
    assert generation(host) == before
    assert 'id="release">1.0.0<' in page(host)


def test_concurrent_deploy_is_refused_by_the_lock(lab: LabLayout, workspace: Path, first: Path) -> None:
    changed = release_inventory(lab, workspace, "3.0.0")
    host = lab1(changed)
    # --verify keeps the first deploy (and its lock) busy for a few seconds after the switch.
    running = start_deploy(changed, "--verify", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with Remote(host.ssh_target) as remote:
            for _ in range(300):
                if remote.run(["test", "-d", host_paths.LOCK_DIR], check=False).ok:
                    break
                time.sleep(0.1)
        second = deploy(changed)
        assert second.returncode == 1
        assert "is locked by another deploy" in second.stderr
        assert "djdeploy unlock --host lab1" in second.stderr
    finally:
        out, err = running.communicate(timeout=300)
    assert running.returncode == 0, out + err
    assert 'id="release">3.0.0<' in page(host)


def test_cut_connection_during_activation_never_leaves_a_half_switched_host(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    changed = release_inventory(lab, workspace, "4.0.0")
    host = lab1(changed)
    before = generation(host)
    running = start_deploy(
        changed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    with Remote(host.ssh_target) as remote:
        for _ in range(600):
            states = remote.run_shell(f"cat {host_paths.ACTIVATION_DIR}/*/state 2>/dev/null; true").stdout
            if "activating" in states or "switched" in states:
                break
            time.sleep(0.05)
        # The deployer dies mid-activation: its SSH connections drop with it.
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
        for _ in range(600):
            final = remote.run_shell(f"cat {host_paths.ACTIVATION_DIR}/*/state; true").stdout.split()
            if not {"activating", "switched", "rolling-back"} & set(final):
                break
            time.sleep(0.1)
        assert remote.run(["systemctl", "is-active", "gunicorn-example.service", "caddy.service"]).ok
    served = page(host)
    if generation(host) == before:
        assert 'id="release">1.0.0<' in served or 'id="release">3.0.0<' in served
    else:
        assert 'id="release">4.0.0<' in served
    # The host decided alone, then recorded its outcome and released the dead deployer's lock itself.
    unlocked = inv("unlock", "--inventory", str(changed), "--host", "lab1")
    assert "lab1 is not locked." in unlocked.stdout
    last = deploy_log(host)[-1]
    assert last["outcome"] in {"success", "rolled back"}
    assert "4.0.0" not in served or last["outcome"] == "success"


def test_rollback_as_a_user_with_sudo_never_shows_the_password(workspace: Path, first: Path) -> None:
    as_deploy_user = yaml.safe_load(first.read_text())
    as_deploy_user["defaults"]["ssh"].update({"user": "deploy", "sudo": True})
    path = workspace / "sudo.yaml"
    path.write_text(yaml.safe_dump(as_deploy_user))
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "rollback", "--inventory", str(path), "--host", "lab1", "--to", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "DJDEPLOY_SUDO_PASSWORD": LAB_SUDO_PASSWORD},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    host = lab1(first)
    assert generation(host) == "system-2-link"
    assert 'id="release">2.0.0<' in page(host)
    assert LAB_SUDO_PASSWORD not in result.stdout + result.stderr
    last = deploy_log(host)[-1]
    assert (last["action"], last["outcome"]) == ("rollback", "success")
    with Remote(host.ssh_target) as remote:
        leaked = remote.run(
            ["grep", "-rlF", LAB_SUDO_PASSWORD, "/var/lib/djdeploy", "/run/djdeploy"], check=False
        )
    assert leaked.stdout == ""


def test_fleet_deploy_reports_a_down_host_and_deploys_the_others(lab: LabLayout) -> None:
    machine.power_off(lab, lab.host(3))
    result = inv(
        "deploy", "--inventory", str(lab.inventory), "--host", "lab1,lab2,lab3", check=False, timeout=900
    )
    assert result.returncode == 1
    assert "lab3" in result.stderr
    assert "Cannot reach lab3" in result.stderr
    hosts = inventory.load(lab.inventory).hosts
    for name in ("lab1", "lab2"):
        assert probe.request(hosts[name].address, "example.lab", "/healthz", verify=False).body == "ok"


def test_command_line_values_are_checked_before_anything_runs(first: Path) -> None:
    host = lab1(first)
    before = (generation(host), len(deploy_log(host)))
    result = deploy(first, "--activation-timeout=-5")
    assert result.returncode == 1
    assert "--activation-timeout must be a positive number of seconds, not '-5'." in said(result)
    assert (generation(host), len(deploy_log(host))) == before
    with Remote(host.ssh_target) as remote:
        assert remote.run(["test", "-e", host_paths.LOCK_DIR], check=False).exit_code == 1


def test_host_names_with_shell_characters_are_refused_at_their_line(lab: LabLayout, workspace: Path) -> None:
    path = workspace / "bad-name.yaml"
    path.write_text(f"hosts:\n  'lab1;touch pwned':\n    address: {lab.host(1).address}\n")
    result = inv("status", "--inventory", str(path), check=False)
    assert result.returncode == 1
    assert f"{path}:2 hosts.lab1;touch pwned: expected a host name" in said(result)


def test_rollback_skips_a_generation_whose_deploy_failed(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    host = lab1(first)
    good = release_inventory(lab, workspace, "5.0.0")
    assert deploy(good).returncode == 0
    healthy = int(generation(host).split("-")[1])
    failing = write_inventory(
        lab,
        workspace,
        "failing-5.1.0",
        healthCheckPath='"/no-such-page"',
        exampleSource=str(release_source(workspace, "5.1.0")),
    )
    assert deploy(failing).returncode == 1
    assert deploy(release_inventory(lab, workspace, "5.2.0")).returncode == 0
    assert generation(host) == f"system-{healthy + 2}-link"
    back = inv("rollback", "--inventory", str(good), "--host", "lab1", check=False)
    assert back.returncode == 0, said(back)
    assert (
        f"Rolling back lab1 to generation {healthy}: the newest earlier generation whose deploy was "
        "confirmed healthy"
    ) in said(back)
    assert f"Passed over: generation {healthy + 1} (rolled back)." in said(back)
    assert generation(host) == f"system-{healthy}-link"
    assert 'id="release">5.0.0<' in page(host)
