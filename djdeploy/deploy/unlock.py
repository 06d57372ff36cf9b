"""Breaking a host's deploy lock: never under a supervisor that still decides, unless forced to roll back."""

from __future__ import annotations

from rich.console import Console

from djdeploy.deploy import supervisor
from djdeploy.errors import DjdeployError
from djdeploy.host import lock, records
from djdeploy.host.lock import LockOwner
from djdeploy.host.records import Action, DeployRecord, RecordOutcome
from djdeploy.inventory import Host
from djdeploy.remote.ssh import Remote

FORCED_REASON = "the deploy lock was broken with `djdeploy unlock --force`"
NEVER_STARTED_REASON = (
    "its deployer left before starting the activation; the lock was broken with `djdeploy unlock`"
)
# Where the system named in a lock's command lives.
NIX_STORE = "/nix/store"


def unlock(remote: Remote, host: Host, *, force: bool, console: Console) -> LockOwner | None:
    """Break the host's lock and return who held it (None: it was not locked).

    While the activation that holds the lock still runs on the host, refuse; with force, reject that
    activation first and wait (bounded) until it has rolled back, recorded its outcome and unlocked.
    """
    holder = lock.read(remote)
    if holder is None:
        return None
    running = supervisor.running(remote, holder.id) if holder.id else None
    if running is not None and not force:
        raise DjdeployError(
            f"{host.name} is locked by {holder.describe()}, and its {running.describe()}; then it records "
            "the outcome and releases the lock by itself. Wait for that (`djdeploy status` shows it), or "
            f"make it roll back now and break the lock with `djdeploy unlock --host {host.name} --force`."
        )
    if running is not None:
        seconds = 2 * host.timeouts.activation + 30  # the switch under way, then the rollback
        console.print(
            f"Rejecting activation {running.activation_id} on {host.name}: waiting up to {seconds:.0f} s "
            "for it to roll back."
        )
        supervisor.reject(remote, running.activation_id, FORCED_REASON)
        progress = supervisor.wait_for(remote, running.activation_id, supervisor.FINAL_STATES, seconds)
        if progress.state not in supervisor.FINAL_STATES:
            raise DjdeployError(
                f"Activation {running.activation_id} on {host.name} had not ended {seconds:.0f} s after it "
                f"was rejected (state '{progress.state or ''}'): the lock stays. Look at "
                f"`journalctl -u {supervisor.unit_name(running.activation_id)}` on the host."
            )
        if progress.state == supervisor.State.ROLLED_BACK:
            ended = f"rolled back to generation {progress.previous}"
        elif progress.state == supervisor.State.CONFIRMED:
            ended = f"it had been confirmed already: generation {progress.generation} stays"
        else:
            ended = str(progress.state)
        console.print(f"Activation {running.activation_id} ended: {ended}.")
    if running is None and holder.id and not supervisor.started(remote, holder.id):
        # The deployer died before it started an activation: no supervisor will write its deploy's line.
        lock.record_and_release(remote, never_switched(holder), holder.id)
        return holder
    # The supervisor released its own lock; any other (a deployer that died before its activation) goes here.
    lock.release(remote, holder.id or None)
    return holder


def never_switched(holder: LockOwner) -> DeployRecord:
    """The deploy-log line of a deploy whose deployer left (killed, cut off) before it switched anything."""
    action, _, system_name = holder.command.partition(" ")
    return DeployRecord(
        id=holder.id,
        user=holder.user,
        machine=holder.machine,
        commit="-",
        started=holder.since,
        system=f"{NIX_STORE}/{system_name}" if system_name else "",
        action=Action.ROLLBACK if action == Action.ROLLBACK else Action.DEPLOY,
        finished=records.now(),
        outcome=RecordOutcome.NOT_SWITCHED,
        reason=NEVER_STARTED_REASON,
    )
