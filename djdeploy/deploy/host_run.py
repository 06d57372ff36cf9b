"""One host's deploy or rollback: lock, copy, switch under the supervisor, check, confirm, record.

A host whose switch, health check or confirmation fails returns to its previous generation by itself.
"""

from __future__ import annotations

import math
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import NoReturn, TypeVar

from rich.console import Console

from djdeploy.deploy import health, plan, supervisor, toplevel, transfer
from djdeploy.deploy.supervisor import State
from djdeploy.errors import DjdeployError
from djdeploy.host import lock, records
from djdeploy.host import system as host_system
from djdeploy.host.records import Action, DeployRecord, RecordOutcome
from djdeploy.host.sites import CADDY_UNIT, Site, of_remote_system, of_system
from djdeploy.inventory import BuildPlace, Host
from djdeploy.ops import verify
from djdeploy.remote.ssh import ConnectionLost, Remote, RemoteCommandError


class Outcome(StrEnum):
    """How a host's deploy or rollback ended, as its summary says."""

    DEPLOYED = "deployed"
    UNCHANGED = "unchanged"
    DRY_RUN = "dry run"
    ROLLED_BACK = "rolled back"
    UNHEALTHY = "unhealthy"
    FAILED = "failed"
    # Not tried: an earlier batch failed.
    SKIPPED = "skipped"


class DeployFailed(DjdeployError):
    """The deploy did not reach the new generation; the message says where the host is now."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class ActivationUnfinished(DeployFailed):
    """The supervisor on the host has not reached a final state: it keeps the host's lock."""


# Seconds the supervisor's confirmation window grows by when --verify runs the named checks first.
VERIFY_SECONDS = 120
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    substitute_on_destination: bool = False
    parallel: int = 4
    batch: int | None = None
    activation_timeout: float | None = None
    confirm_timeout: float | None = None
    sudo_password: str | None = field(default=None, repr=False)
    # Also run every named check of `verify` before confirming.
    verify: bool = False


@dataclass(frozen=True)
class Result:
    host: str
    outcome: Outcome
    message: str
    generation: int | None = None
    steps: tuple[tuple[str, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in {Outcome.DEPLOYED, Outcome.UNCHANGED, Outcome.DRY_RUN}


@dataclass
class StepLog:
    """Prints one line per step with its duration, and keeps the durations for the summary."""

    console: Console
    host: str
    show_host: bool
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        prefix = f"[bold]{self.host}[/] " if self.show_host else ""
        try:
            yield
        except BaseException:
            seconds = time.monotonic() - started
            self.console.print(f"{prefix}[red]✗[/] {name} [dim]{seconds:.2f} s[/]")
            raise
        seconds = time.monotonic() - started
        self.steps.append((name, seconds))
        self.console.print(f"{prefix}[green]✓[/] {name} [dim]{seconds:.2f} s[/]")


def connect(host: Host, options: Options) -> Remote:
    return Remote(host.ssh_target, options.sudo_password).open()


def rollback(host: Host, to: int | None, options: Options, console: Console) -> Result:
    """Switch a host back to the generation before the current one (or `to`), checked and confirmed."""
    log = StepLog(console, host.name, show_host=False)
    remote = connect(host, options)
    run = HostRun(host, remote, options, console, log)
    try:
        facts = host_system.facts(remote)
        generations = {generation.number: generation.system for generation in host_system.generations(remote)}
        current = facts.generation_number
        earlier = [number for number in generations if current and number < current]
        target = to if to is not None else max(earlier, default=None)
        if target is None or target not in generations:
            wanted = str(to) if to is not None else f"before {current}"
            raise DjdeployError(
                f"{host.name} has no generation {wanted} to roll back to. "
                f"Its generations: {', '.join(map(str, sorted(generations))) or 'none'}."
            )
        if target == current:
            raise DjdeployError(f"{host.name} is already on generation {target}.")
        commit = records.recorded_commit(remote, target, generations[target])
        return run.switch(generations[target], target, commit=commit)
    finally:
        run.close()


@dataclass
class HostRun:
    """One host's deploy or rollback over one SSH connection."""

    host: Host
    remote: Remote
    options: Options
    console: Console
    log: StepLog

    def deploy(self, system: Path) -> Result:
        toplevel.require_system(system, self.host.name)
        with self.log.step("compare with the host"):
            facts = host_system.facts(self.remote)
        if facts.lock is not None:
            # Another deploy is under way: what the host runs now may still be rolled back.
            error = lock.held(self.remote.target, facts.lock)
            if not self.options.dry_run:
                raise error
            self.console.print(f"{_prefix(self.log)}[yellow]Note:[/] {error.message}")
        if facts.current_system == system and facts.profile_system == system:
            return self._unchanged(system, facts)
        if self.options.dry_run:
            if self.host.build.on.place is BuildPlace.LOCAL:
                plan.show_plan(self.remote, self.host, system, facts, self.console)
            else:
                self.console.print(
                    f"{_prefix(self.log)}{self.host.name} would get {system.name}, built elsewhere "
                    "(`build.on`); the paths to copy and the units to change are listed for systems "
                    "built here."
                )
            return Result(
                self.host.name, Outcome.DRY_RUN, "nothing was copied", facts.generation_number, self._steps()
            )
        return self.switch(system, None, commit=records.commit())

    def _unchanged(self, system: Path, facts: host_system.Facts) -> Result:
        """The host runs this system already: say so only if it is healthy, once checked without waiting."""
        sites = (
            of_system(system)
            if self.host.build.on.place is BuildPlace.LOCAL
            else of_remote_system(self.remote, system)
        )
        with self.log.step("health check"):
            problems = health.check(self.remote, self.host.address, sites, 0).problems
        name = self.host.name
        if problems:
            raise DeployFailed(
                f"{name} already runs {system.name} (generation {facts.generation_number}), so there is "
                f"nothing to deploy, but it is unhealthy: {'; '.join(problems)}. Deploying the same build "
                f"again would not change that. See why with `{logs_command(name, sites)}`, then deploy a "
                f"fixed build, or return to the generation before with `djdeploy rollback --host {name}`.",
                Outcome.UNHEALTHY,
            )
        self.console.print(
            f"{_prefix(self.log)}Nothing changed: {name} already runs {system.name}, and it is healthy."
        )
        return Result(name, Outcome.UNCHANGED, "already up to date", facts.generation_number, self._steps())

    def switch(self, system: Path, existing_generation: int | None, *, commit: str) -> Result:
        """Lock, copy, set the profile and activate, check, confirm, record, unlock.

        existing_generation: the generation of system to return to (a rollback), instead of copying system
        and making a new generation of it (a deploy).
        commit: the commit system was built from, for the deploy log.
        The lock stays only while the supervisor on the host has not finished: it still decides then.
        """
        activation_id = supervisor.new_id()
        action = Action.DEPLOY if existing_generation is None else Action.ROLLBACK
        with self.log.step("take the deploy lock"):
            lock.acquire(self.remote, activation_id, f"{action} {system.name}")
        deployer = records.who()
        entry = DeployRecord(
            id=activation_id,
            user=deployer["user"],
            machine=deployer["machine"],
            commit=commit,
            started=records.now(),
            system=str(system),
            action=action,
        )
        try:
            return self._switch_locked(system, existing_generation, entry, action)
        except DeployFailed:
            raise  # recorded and unlocked, or still in the supervisor's hands (ActivationUnfinished)
        except BaseException:
            with suppress(DjdeployError):
                self._on_host(lambda remote: lock.release(remote, activation_id))
            raise

    def close(self) -> None:
        self.remote.close()

    def _steps(self) -> tuple[tuple[str, float], ...]:
        return tuple(self.log.steps)

    def _on_host(self, action: Callable[[Remote], T]) -> T:
        """Run action over the deploy's connection, or once more over a new one if the switch cut it."""
        try:
            return action(self.remote)
        except ConnectionLost:
            with suppress(Exception):
                self.remote.close()
            self.remote = connect(self.host, self.options)
            return action(self.remote)

    def _switch_locked(
        self, system: Path, existing_generation: int | None, entry: DeployRecord, action: Action
    ) -> Result:
        host, log = self.host, self.log
        activation_id = entry.id
        deploying = action is Action.DEPLOY
        built_here = deploying and host.build.on.place is BuildPlace.LOCAL
        if built_here:  # checked before the copy, which a mistake would make in vain
            sites = of_system(system)
            _check_inventory_sites(host, sites)
        copy_step = transfer.copy_step(host.build.on) if deploying else None
        if copy_step is not None and built_here and host.cache is not None:
            copy_step = transfer.fetched_from_cache(self.remote, host.cache, system, copy_step, log.step)
        if copy_step is not None:
            with log.step(copy_step):
                substitute = self.options.substitute_on_destination
                transfer.deliver(
                    self.remote, system, host.build.on, substitute, self.console, show=not log.show_host
                )
        if not built_here:  # a rollback's system, or one built elsewhere: on the host now
            sites = of_remote_system(self.remote, system)
            _check_inventory_sites(host, sites)
        activation_timeout = self.options.activation_timeout or host.timeouts.activation
        confirm_timeout = self.options.confirm_timeout or host.timeouts.confirm
        # The supervisor waits through the health check (and the named checks), then for the confirmation.
        confirm_window = math.ceil(
            host.timeouts.health + confirm_timeout + (VERIFY_SECONDS if self.options.verify else 0)
        )
        with log.step("start the activation (systemd-run)"):
            try:
                supervisor.start(self.remote, activation_id, system, existing_generation, confirm_window)
            except RemoteCommandError:
                raise  # systemd-run ran and refused: no supervisor, nothing changed
            except DjdeployError as exc:
                raise self._lost_track(exc) from exc
        try:
            progress, failure, result = self._follow(
                activation_id, sites, activation_timeout, confirm_timeout
            )
        except DjdeployError as exc:
            raise self._lost_track(exc) from exc
        generation = progress.generation
        entry = replace(entry, finished=records.now(), generation=generation)
        if progress.state == State.CONFIRMED and progress.boot_status not in (None, 0):
            self._report_boot_failure(entry, progress)
        if progress.state == State.CONFIRMED:
            with log.step("record the deploy and unlock"):
                self._on_host(
                    lambda remote: lock.record_and_release(
                        remote, replace(entry, outcome=RecordOutcome.SUCCESS), activation_id
                    )
                )
            self.console.print(
                f"{_prefix(log)}[green]{'Deployed' if deploying else 'Rolled back'}[/] {host.name}: "
                f"generation {generation}, {system.name}"
            )
            return Result(host.name, Outcome.DEPLOYED, f"generation {generation}", generation, self._steps())
        assert result is not None  # read whenever the activation was not confirmed
        if result.state not in supervisor.FINAL_STATES:
            raise ActivationUnfinished(
                f"{host.name}: the activation of generation {generation} is still running on the host "
                f"(state '{result.state or ''}'); it rolls back by itself unless confirmed. The deploy lock "
                "stays until then: check with `djdeploy status`, then `djdeploy unlock` once it has ended.",
                Outcome.FAILED,
            )
        self._report_failure(result, failure, entry, progress, sites)

    def _follow(
        self, activation_id: str, sites: Sequence[Site], activation_timeout: float, confirm_timeout: float
    ) -> tuple[supervisor.Progress, str | None, supervisor.ActivationResult | None]:
        """Wait for the switch, check, confirm (or reject) and wait for the supervisor's final state.

        Returns where the supervisor is, why the deploy did not confirm (None when it did), and, when the
        final state is not "confirmed", the supervisor's outcome with its reason and log.
        """
        log = self.log
        with log.step("set the profile and switch (switch-to-configuration test)"):
            progress = self._wait(
                activation_id, {State.SWITCHED, *supervisor.FINAL_STATES}, activation_timeout
            )
        if progress.state == State.SWITCHED:
            failure = self._check_and_confirm(activation_id, sites)
        elif progress.state in supervisor.FINAL_STATES:
            failure = "activation failed"
        else:
            failure = f"the activation did not finish within {activation_timeout:.0f} s"
            self._on_host(lambda remote: supervisor.reject(remote, activation_id, failure))
        if failure is None:
            with log.step("make it the boot default (switch-to-configuration boot)"):
                progress = self._wait(activation_id, supervisor.FINAL_STATES, confirm_timeout + 10)
        elif progress.state not in supervisor.FINAL_STATES:
            progress = self._wait(activation_id, supervisor.FINAL_STATES, activation_timeout)
        if progress.state == State.CONFIRMED:
            return progress, failure, None
        result = self._on_host(lambda remote: supervisor.result(remote, activation_id))
        if result.state == State.CONFIRMED:  # reached just after the wait for it gave up
            return self._wait(activation_id, supervisor.FINAL_STATES, 10), failure, None
        return progress, failure, result

    def _lost_track(self, error: DjdeployError) -> ActivationUnfinished:
        """The supervisor may be running, but this deploy cannot follow it: it decides alone, lock kept."""
        return ActivationUnfinished(
            f"{self.host.name}: lost the host while its activation ran ({error.message}). The host decides "
            "by itself: it keeps the new generation only if this deploy confirmed it, and rolls back "
            "otherwise. The deploy lock stays: check with `djdeploy status`, then `djdeploy unlock` once the "
            "activation has ended.",
            Outcome.FAILED,
        )

    def _report_boot_failure(self, entry: DeployRecord, progress: supervisor.Progress) -> NoReturn:
        """The new generation runs and passed its checks, but a reboot would not start it."""
        activation_id = entry.id
        log = self._on_host(lambda remote: supervisor.result(remote, activation_id)).log
        reason = f"switch-to-configuration boot exited with {progress.boot_status}"
        recorded = replace(entry, outcome=RecordOutcome.NOT_BOOT_DEFAULT, reason=reason)
        self._on_host(lambda remote: lock.record_and_release(remote, recorded, activation_id))
        raise DeployFailed(
            f"{self.host.name}: generation {progress.generation} runs and passed its checks, but making it "
            f"the boot default failed ({reason}), so a reboot would start an older generation. Fix the "
            "cause in the log below (often a full /boot), then run "
            f"`/run/current-system/bin/switch-to-configuration boot` on the host.\n{log}",
            Outcome.FAILED,
        )

    def _report_failure(
        self,
        result: supervisor.ActivationResult,
        failure: str | None,
        entry: DeployRecord,
        progress: supervisor.Progress,
        sites: Sequence[Site],
    ) -> NoReturn:
        """Record a failed activation's outcome on the host, unlock, and raise DeployFailed."""
        host, generation, activation_id = self.host, progress.generation, entry.id
        reason = result.reason or failure or f"the activation ended as '{result.state}'"
        details = self._activation_details(result, reason, activation_id, sites)
        outcome = _RECORDED.get(result.state or State.FAILED, RecordOutcome.FAILED)
        recorded = replace(entry, outcome=outcome, reason=reason)
        if result.state == State.ROLLED_BACK:
            recorded = replace(recorded, generation=progress.previous)
        self._on_host(lambda remote: lock.record_and_release(remote, recorded, activation_id))
        if result.state == State.ROLLED_BACK:
            raise DeployFailed(
                f"{host.name}: rolled back to generation {progress.previous} because {reason}.{details}",
                Outcome.ROLLED_BACK,
            )
        if result.state == State.NOT_SWITCHED:
            raise DeployFailed(
                f"{host.name}: nothing was switched: {reason}. The host still runs "
                f"{f'generation {progress.previous}' if progress.previous is not None else 'its system'}. "
                f"The activation log:\n{result.log}",
                Outcome.FAILED,
            )
        if result.state == State.ROLLBACK_FAILED:
            raise DeployFailed(
                f"{host.name}: generation {generation} failed ({reason}) and returning to the previous "
                f"generation FAILED too: the host needs a person. Its activation log:{details}",
                Outcome.FAILED,
            )
        raise DeployFailed(
            f"{host.name}: the new generation {generation} failed ({reason}) and there is no earlier "
            f"generation to roll back to.{details}",
            Outcome.FAILED,
        )

    def _activation_details(
        self, result: supervisor.ActivationResult, reason: str, activation_id: str, sites: Sequence[Site]
    ) -> str:
        """What a failed activation said: each failed unit's own journal, else the activation's log."""
        activation_failed = reason.startswith("activation failed")
        errors = self._on_host(lambda remote: supervisor.unit_errors(remote, activation_id))
        said = "".join(f"\n{_unit_error_text(self.host.name, error, sites)}" for error in errors)
        if result.log and (result.state == State.ROLLBACK_FAILED or (activation_failed and not errors)):
            said += f"\n{result.log}"
        return said

    def _check_and_confirm(self, activation_id: str, sites: Sequence[Site]) -> str | None:
        """Health check, then confirmation over a new connection; return why not confirmed, or None."""
        host, log = self.host, self.log
        # The new connection opens while the health check runs: both come after the switch.
        with ThreadPoolExecutor(max_workers=1) as opener:
            fresh_connection = opener.submit(connect, host, self.options)
            try:
                with log.step("health check"):
                    report = health.check(self.remote, host.address, sites, host.timeouts.health)
                problems = report.problems
            except DjdeployError as exc:
                problems = (f"it could not run: {exc.message}",)
            failure = "the health check failed: " + "; ".join(problems) if problems else None
            if failure is None and self.options.verify:
                with log.step("verify (named checks of the deployed state)"):
                    failed = [r for r in verify.check_host(self.remote, host.address, sites) if not r.passed]
                if failed:
                    failure = "the checks failed: " + "; ".join(
                        f"{r.check}{f' ({r.site})' if r.site else ''}: {r.detail}" for r in failed
                    )
            if failure is None:
                with log.step("confirm over a new SSH connection"):
                    try:
                        with fresh_connection.result() as fresh:
                            supervisor.confirm(fresh, activation_id)
                    except DjdeployError as exc:
                        failure = f"a new SSH connection to the switched host failed: {exc.message}"
            else:
                with suppress(DjdeployError):
                    fresh_connection.result().close()
        if failure is not None:
            reason, units = failure, [*(unit for site in sites for unit in site.units), CADDY_UNIT]
            self._on_host(lambda remote: supervisor.reject(remote, activation_id, reason, units))
        return failure

    def _wait(self, activation_id: str, states: Set[State], timeout: float) -> supervisor.Progress:
        """Wait for the supervisor; after a dropped connection, ask again over a new one."""
        return self._on_host(lambda remote: supervisor.wait_for(remote, activation_id, states, timeout))


# What the deploy record says of a supervisor's final state other than confirmed.
_RECORDED = {
    State.ROLLED_BACK: RecordOutcome.ROLLED_BACK,
    State.NOT_SWITCHED: RecordOutcome.NOT_SWITCHED,
    State.ROLLBACK_FAILED: RecordOutcome.ROLLBACK_FAILED,
    State.FAILED: RecordOutcome.FAILED,
}


def _check_inventory_sites(host: Host, sites: Sequence[Site]) -> None:
    missing = sorted(set(host.sites) - {site.name for site in sites})
    if missing:
        raise DjdeployError(
            f"The inventory lists site(s) {', '.join(missing)} for {host.name}, but its built system has "
            f"{', '.join(site.name for site in sites) or 'no site'}. Fix `sites:` in the inventory or "
            "the host's django.sites."
        )


def logs_command(host: str, sites: Sequence[Site]) -> str:
    """The command that shows the journal of these sites (of all the host's sites and Caddy when several)."""
    return f"djdeploy logs {host}" + (f" --site {sites[0].name}" if len(sites) == 1 else "")


def _unit_error_text(host: str, error: supervisor.UnitError, sites: Sequence[Site]) -> str:
    journal = textwrap.indent(error.journal, "  ") if error.journal else "  (nothing from this activation)"
    own_site = [site for site in sites if error.unit in site.units]
    return (
        f"{error.unit} failed. The end of its journal:\n{journal}\n"
        f"More with `{logs_command(host, own_site)}`."
    )


def _prefix(log: StepLog) -> str:
    return f"[bold]{log.host}[/] " if log.show_host else ""
