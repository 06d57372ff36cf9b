"""Lab tasks: real Debian hosts in systemd-nspawn containers on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from djdeploy.console import console, reports_errors
from djdeploy.lab.layout import LabLayout
from djdeploy.tasks import deploy as deploy_task
from djdeploy.tasks import ops
from djdeploy.tasks.common import task

if TYPE_CHECKING:
    from invoke.context import Context


@task(
    help={
        "hosts": "how many hosts to run, lab1..labN (1 to 8; default 1)",
        "cache": "also run a signed binary cache the hosts fetch deploys from (until lab.down)",
    }
)
@reports_errors
def up(context: Context, hosts: int = 1, cache: bool = False) -> None:
    """Boot lab hosts lab1..labN (building the Debian image the first time)."""
    from djdeploy.lab import control

    layout = LabLayout.from_environment()
    control.up(layout, hosts, console, with_cache=cache)
    console.print(f"Inventory for the lab: {layout.inventory}")


@task
@reports_errors
def down(context: Context) -> None:
    """Power off every lab host and remove its namespace, veth, mounts and files."""
    from djdeploy.lab import control

    control.down(LabLayout.from_environment(), console)


@task(help={"host": "the lab host to reboot, e.g. lab1"})
@reports_errors
def reboot(context: Context, host: str) -> None:
    """Power a lab host off and boot it again, keeping its disk: it boots its boot default system."""
    from djdeploy.lab import control

    control.reboot(LabLayout.from_environment(), host, console)


@task
@reports_errors
def status(context: Context) -> None:
    """List lab hosts with address, state and current system generation."""
    from rich.table import Table

    from djdeploy.lab import control

    rows = control.status(LabLayout.from_environment())
    if not rows:
        console.print("No lab hosts. Start some with `djdeploy lab.up --hosts N`.")
        return
    table = Table("host", "address", "state", "generation")
    for row in rows:
        table.add_row(row.name, row.address, row.state, row.generation)
    console.print(table)


@task(help={"hosts": "how many lab hosts to deploy to (1 to 8; default 1)"})
@reports_errors
def demo(context: Context, hosts: int = 1) -> None:
    """The main job on the lab: boot hosts, deploy the example site to them, show their status."""
    from djdeploy.lab import control

    layout = LabLayout.from_environment()
    control.up(layout, hosts, console)
    inventory = str(layout.inventory)
    names = ",".join(layout.host(index).name for index in range(1, hosts + 1))
    deploy_task.deploy(context, host=names, inventory=inventory)
    ops.status(context, host=names, inventory=inventory)
    console.print(
        f"The example site runs on {names}. To use any task on it, `export DJDEPLOY_INVENTORY={inventory}`, "
        "then for example `djdeploy status` or `djdeploy manage lab1 showmigrations --plan`."
    )


@task(
    help={
        "file": "the project's lab file (default: lab.yaml in this directory)",
        "hosts": "how many lab hosts to deploy it to (1 to 8; default 1)",
    }
)
@reports_errors
def rehearse(context: Context, file: str = "lab.yaml", hosts: int = 1) -> None:
    """Deploy your own project, described by lab.yaml, to lab hosts lab1..labN."""
    from djdeploy.lab import control
    from djdeploy.lab import project as lab_project

    layout = LabLayout.from_environment()
    project = lab_project.load(Path(file).resolve())
    control.check_host_count(hosts)
    names = [layout.host(index).name for index in range(1, hosts + 1)]
    # The lock file is read before any host boots, so that an unpinned entry fails at once.
    inventory = str(lab_project.write_inventory(layout, project, names))
    control.up(layout, hosts, console, project.image)
    deploy_task.deploy(context, host=",".join(names), inventory=inventory)
    console.print(
        f"{project.name} runs on {', '.join(names)} as https://{project.hostname}/. To use any task on it, "
        f"`export DJDEPLOY_INVENTORY={inventory}`, then for example `djdeploy manage lab1 check --deploy`."
    )
