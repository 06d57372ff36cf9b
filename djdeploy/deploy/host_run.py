"""One host's deploy or rollback: lock, copy, switch under the supervisor, check, confirm, record.

A host whose switch, health check or confirmation fails returns to its previous generation by itself.
"""

from __future__ import annotations

import math
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn, TypeVar

from rich.console import Console
from rich.markup import escape

from djdeploy.deploy import (
    health,
    interrupt,
    migrations,
    plan,
    premigrate,
    schema,
    supervisor,
    toplevel,
    transfer,
    unit_failures,
)
from djdeploy.deploy.migrations import SitePlan
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Outcome, Result
from djdeploy.deploy.supervisor import State
from djdeploy.errors import DjdeployError
from djdeploy.host import lock, records
from djdeploy.host import system as host_system
from djdeploy.host.records import Action, DeployRecord, RecordedBackup, RecordOutcome
from djdeploy.host.sites import CADDY_UNIT, Site, of_remote_system, of_system
from djdeploy.inventory import BeforeMigrate, BuildPlace, Host
from djdeploy.ops import db
from djdeploy.ops.status import migrated_command
from djdeploy.remote.ssh import ConnectionLost, Remote, RemoteCommandError


class DeployFailed(DjdeployError):
    """The deploy did not reach the new generation; the message says where the host is now."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class ActivationUnfinished(DeployFailed):
    """The supervisor on the host has not reached a final state: it records the outcome and unlocks later."""


# Seconds the supervisor's confirmation window grows by when --verify runs the named checks first.
VERIFY_SECONDS = 120
T = TypeVar("T")


@dataclass
class StepLog:
    """Prints one line per step with its duration, and keeps the durations for the summary."""

    console: Console
    host: str
    show_host: bool
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[StepMark]:
        """A step; it fails when its block raises or marks it failed (a check that found problems)."""
        started = time.monotonic()
        prefix = f"[bold]{self.host}[/] " if self.show_host else ""
        mark = StepMark()
        try:
            yield mark
        except BaseException:
            seconds = time.monotonic() - started
            self.console.print(f"{prefix}[red]✗[/] {name} [dim]{seconds:.2f} s[/]")
            raise
        seconds = time.monotonic() - started
        self.steps.append((name, seconds))
        tick = "[red]✗[/]" if mark.failed else "[green]✓[/]"
        told = f"{name}: {escape(mark.detail)}" if mark.detail else name
        self.console.print(f"{prefix}{tick} {told} [dim]{seconds:.2f} s[/]")


@dataclass
class StepMark:
    """Set by a step's block: when the step failed without raising, and what it found, for its line."""

    failed: bool = False
    detail: str = ""


def connect(host: Host, options: Options) -> Remote:
    return Remote(host.ssh_target, options.sudo_password).open()


def rollback(
    host: Host, to: int | None, options: Options, console: Console, stopper: interrupt.Stopper[Result]
) -> Result:
    """Switch a host back to `to`, or to the newest earlier generation a deploy confirmed healthy, checked and
    confirmed as a deploy is."""
    log = StepLog(console, host.name, show_host=False)
    remote = connect(host, options)
    run = HostRun(host, remote, options, console, log, stopping=stopper.event)
    stopper.register(run)
    try:
        facts = host_system.facts(remote)
        generations = {generation.number: generation.system for generation in host_system.generations(remote)}
        known = records.every(remote)
        current = facts.generation_number
        target = to if to is not None else _healthy_target(host.name, current, generations, known, console)
        if target not in generations:
            raise DjdeployError(
                f"{host.name} has no generation {target} to roll back to. "
                f"Its generations: {', '.join(map(str, sorted(generations))) or 'none'}."
            )
        if target == current:
            raise DjdeployError(f"{host.name} is already on generation {target}.")
        commit = records.commit_of(known, target, generations[target])
        files = schema.rollback_files(remote, current, target)
        return run.switch(generations[target], target, commit=commit, files=files)
    finally:
        run.close()


def _healthy_target(
    name: str,
    current: int | None,
    generations: dict[int, Path],
    known: list[DeployRecord],
    console: Console,
) -> int:
    """The newest generation before current whose deploy passed its checks and was confirmed, and why."""
    earlier = sorted((number for number in generations if current and number < current), reverse=True)
    passed_over: list[str] = []
    for number in earlier:
        healthy = records.confirmed_healthy(known, number, generations[number])
        if healthy is not None:
            skipped = f" Passed over: {'; '.join(passed_over)}." if passed_over else ""
            console.print(
                f"Rolling back {name} to generation {number}: the newest earlier generation whose "
                f"{healthy.action} was confirmed healthy ({healthy.finished or healthy.started}, "
                f"{healthy.user}@{healthy.machine}, commit {healthy.commit or '-'}).{skipped}"
            )
            return number
        last = [record for record in known if record.system == str(generations[number])][-1:]
        passed_over.append(
            f"generation {number} ({last[0].outcome or 'no outcome'})"
            if last
            else f"generation {number} (no deploy record)"
        )
    raise DjdeployError(
        f"{name} has no generation before {current} that a deploy confirmed healthy"
        f"{': ' + '; '.join(passed_over) if passed_over else ''}. Name the one to return to with "
        f"`djdeploy rollback --host {name} --to N` (`djdeploy status --host {name}` lists them)."
    )


@dataclass
class HostRun:
    """One host's deploy or rollback over one SSH connection."""

    host: Host
    remote: Remote
    options: Options
    console: Console
    log: StepLog
    # Set by the first Ctrl-C: the run stops at its next step and never confirms.
    stopping: threading.Event = field(default_factory=threading.Event)
    # The activation under way (its supervisor may be running), once started, and what is known of it.
    activation_id: str | None = None
    generation: int | None = None
    decides_by: datetime | None = None
    rejected: bool = False

    def deploy(self, system: Path) -> Result:
        if self.host.build.on.place is BuildPlace.LOCAL:  # a system built elsewhere was checked there
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
                plan.show_plan(
                    self.remote,
                    self.host,
                    system,
                    facts,
                    self.console,
                    substitute_on_destination=self.options.substitute_on_destination,
                )
            else:
                self.console.print(
                    f"{_prefix(self.log)}{self.host.name} would get {system.name}, built elsewhere "
                    "(`build.on`); the paths to copy and the units to change are listed for systems "
                    "built here."
                )
            return Result(
                self.host.name,
                Outcome.DRY_RUN,
                "nothing was switched",
                facts.generation_number,
                self._steps(),
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

    def switch(
        self,
        system: Path,
        existing_generation: int | None,
        *,
        commit: str,
        files: Mapping[str, str] | None = None,
    ) -> Result:
        """Lock, copy, set the profile and activate, check, confirm; the supervisor records and unlocks.

        existing_generation: the generation of system to return to (a rollback), instead of copying system
        and making a new generation of it (a deploy).
        commit: the commit system was built from, for the deploy log.
        files: a rollback's files for the activation's directory (how to put the schema back first).
        Once the supervisor runs, it alone writes the deploy's line in the deploy log and releases the lock,
        on its final state; before, a failure is recorded as "not switched" here.
        """
        self._stop_if_asked("before anything was switched")
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
            return self._switch_locked(system, existing_generation, entry, files or {})
        except BaseException as exc:
            if self.activation_id is None:  # else the supervisor records and unlocks
                self._record_not_switched(entry, exc)
            raise

    def _record_not_switched(self, entry: DeployRecord, error: BaseException) -> None:
        """The deploy ended before its supervisor started: one "not switched" line, and the lock released."""
        reason = error.message if isinstance(error, DjdeployError) else interrupt_reason(error)
        recorded = replace(
            entry, finished=records.now(), outcome=RecordOutcome.NOT_SWITCHED, reason=reason.split("\n")[0]
        )
        with suppress(DjdeployError):
            self._on_host(lambda remote: lock.record_and_release(remote, recorded, entry.id))

    def _stop_if_asked(self, where: str) -> None:
        if self.stopping.is_set():
            raise DeployFailed(
                f"{self.host.name}: stopped by Ctrl-C {where}: nothing was switched, the host runs what it "
                "ran.",
                Outcome.FAILED,
            )

    def interrupt(self) -> None:
        """The first Ctrl-C (from the main thread): say what happens now, and reject the activation."""
        self.stopping.set()
        name, activation_id = self.host.name, self.activation_id
        if activation_id is None:
            self.console.print(f"stopping: nothing was switched on {name}; its deploy lock is released.")
            return
        what = f"generation {self.generation}" if self.generation is not None else "the new generation"
        self.console.print(f"stopping: rejecting {what} on {name}, it rolls back now")
        # Over a new connection: the deploy's own may be busy waiting on the host.
        try:
            with connect(self.host, self.options) as fresh:
                supervisor.reject(fresh, activation_id, STOPPED_REASON)
            self.rejected = True
        except DjdeployError as exc:
            self.console.print(f"[red]✗[/] could not reach {name} to reject it ({exc.message}).")

    def leave_message(self) -> str:
        """What the host does by itself once the deployer has left."""
        name = self.host.name
        if self.activation_id is None:
            return f"{name}: nothing was switched."
        if self.rejected:
            return (
                f"{name} was told to roll back and does so by itself as soon as its switch ends, then "
                f"records the outcome and releases its lock: `djdeploy status --host {name}` shows it."
            )
        by = f" by {self.decides_by:%H:%M:%S} UTC" if self.decides_by else ""
        return (
            f"{name} decides by itself: unconfirmed, it rolls back{by}, then records the outcome and "
            f"releases its lock: `djdeploy status --host {name}` shows it. If it restarts before, it "
            "boots its boot default (the generation before) and its deploy log gets no line for this deploy."
        )

    @property
    def stop_seconds(self) -> float:
        """A stopped host's longest way to its outcome: the switch under way, then the rollback's; or the
        migrations under way before the switch (they end before the deploy stops, switching nothing)."""
        activation = self.options.activation_timeout or self.host.timeouts.activation
        return max(2 * activation, self.options.migrate_timeout or self.host.timeouts.migrate) + 30

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

    def _deliver(self, system: Path, *, deploying: bool) -> tuple[Site, ...]:
        """Get a deploy's system onto the host (from the cache, by copy, or from its builder); its sites."""
        host, log = self.host, self.log
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
                try:
                    transfer.deliver(
                        self.remote, system, host.build.on, substitute, self.console, show=not log.show_host
                    )
                except (DjdeployError, KeyboardInterrupt):
                    self._stop_if_asked("during the copy")
                    raise
        self._stop_if_asked("after the copy")
        if not built_here:  # a rollback's system, or one built elsewhere: on the host now
            sites = of_remote_system(self.remote, system)
            _check_inventory_sites(host, sites)
        return sites

    def _switch_locked(
        self, system: Path, existing_generation: int | None, entry: DeployRecord, files: Mapping[str, str]
    ) -> Result:
        host, log = self.host, self.log
        activation_id = entry.id
        deploying = entry.action is Action.DEPLOY
        sites = self._deliver(system, deploying=deploying)
        if deploying:
            plans = self._migration_plans(system, sites)
            backups = self._back_up(sites, plans)
            entry = replace(entry, backups=backups)
            # The migrations the old release can live with are applied while it still serves.
            premigrate.run(
                self.remote,
                system,
                plans,
                sites,
                timeout=self.options.migrate_timeout or host.timeouts.migrate,
                step=log.step,
                say=lambda line: self.console.print(f"{_prefix(log)}  {line}"),
            )
            self._stop_if_asked("after the migrations applied before the switch")
            files = schema.activation_files(
                host.name, host.rollback.database, system=system, sites=sites, plans=plans, backups=backups
            )
        activation_timeout = self.options.activation_timeout or host.timeouts.activation
        confirm_timeout = self.options.confirm_timeout or host.timeouts.confirm
        # The supervisor waits through the health check (and the named checks), then for the confirmation.
        confirm_window = math.ceil(
            host.timeouts.health + confirm_timeout + (VERIFY_SECONDS if self.options.verify else 0)
        )
        with log.step("start the activation (systemd-run)"):
            self.activation_id = activation_id
            self.decides_by = _seconds_from_now(activation_timeout + confirm_window)
            try:
                supervisor.start(self.remote, entry, system, existing_generation, confirm_window, files=files)
            except RemoteCommandError:
                self.activation_id = None
                raise  # systemd-run ran and refused: no supervisor, nothing changed
            except DjdeployError as exc:
                raise self._lost_track(exc) from exc
        try:
            progress, failure, result = self._follow(
                activation_id, sites, activation_timeout, confirm_timeout, confirm_window
            )
        except DjdeployError as exc:
            raise self._lost_track(exc) from exc
        generation = progress.generation
        if progress.state == State.CONFIRMED and progress.boot_status not in (None, 0):
            self._report_boot_failure(activation_id, progress)
        if progress.state == State.CONFIRMED:
            if self.stopping.is_set():
                raise DeployFailed(
                    f"{host.name}: stopped by Ctrl-C, but generation {generation} had been confirmed "
                    f"already: it stays, {system.name}.",
                    Outcome.FAILED,
                )
            self.console.print(
                f"{_prefix(log)}[green]{'Deployed' if deploying else 'Rolled back'}[/] {host.name}: "
                f"generation {generation}, {system.name}"
            )
            if files:
                for line in self._on_host(lambda remote: schema.said(remote, activation_id)):
                    self.console.print(f"{_prefix(log)}{escape(line)}")
            return Result(host.name, Outcome.DEPLOYED, f"generation {generation}", generation, self._steps())
        assert result is not None  # read whenever the activation was not confirmed
        if result.state not in supervisor.FINAL_STATES:
            raise ActivationUnfinished(
                f"{host.name}: the activation of generation {generation} is still running on the host "
                f"(state '{result.state or ''}'). {self.leave_message()}",
                Outcome.FAILED,
            )
        self._report_failure(result, failure, progress, sites)

    def _migration_plans(self, system: Path, sites: Sequence[Site]) -> tuple[SitePlan, ...]:
        """Each site's migrations, asked once before the switch; a refusal when unsafe ones are not wanted."""
        with self.log.step("migration plan") as step:
            plans = migrations.plan_sites(self.remote, system, sites)
            step.detail = migrations.summary(plans)
        for site_plan in plans:
            if site_plan.apply:
                for line in migrations.describe(site_plan)[1:]:
                    self.console.print(f"{_prefix(self.log)}{escape(line)}")
        unsafe = [(site_plan.site, m) for site_plan in plans for m in site_plan.unsafe]
        if unsafe and (self.options.require_safe_migrations or self.host.migrations.require_safe):
            found = "; ".join(f"{site}: {m.label} ({'; '.join(m.unsafe)})" for site, m in unsafe)
            raise DeployFailed(
                f"{self.host.name}: refused before anything was switched, as safe migrations are required "
                f"(--require-safe-migrations or the inventory's migrations.require_safe): {found}. The old "
                "release serves requests while they apply, and would fail. Split the change: first a release "
                "that stops using what goes away, then one that removes it; or deploy without the "
                "requirement, accepting errors during the switch. The host runs what it ran.",
                Outcome.FAILED,
            )
        return plans

    def _back_up(self, sites: Sequence[Site], plans: Sequence[SitePlan]) -> tuple[RecordedBackup, ...]:
        """Dump the databases the inventory's backup.before_migrate asks for, keeping backup.keep of them."""
        policy, keep = self.host.backup.before_migrate, self.host.backup.keep
        migrating = {site_plan.site for site_plan in plans if site_plan.apply}
        chosen = [
            site
            for site in sites
            if site.database is not None
            and (policy is BeforeMigrate.ALWAYS or (policy is BeforeMigrate.AUTO and site.name in migrating))
        ]
        made = []
        for site in chosen:
            with self.log.step(f"back up the database of {site.name}") as step:
                started = time.monotonic()
                dump = db.backup(self.remote, site, db.BEFORE_DEPLOY, keep)
                recorded = RecordedBackup(
                    site.name, dump.name, dump.size, round(time.monotonic() - started, 2)
                )
                step.detail = f"{dump.name}, {dump.size / 1e6:.1f} MB"
            made.append(recorded)
        return tuple(made)

    def _follow(
        self,
        activation_id: str,
        sites: Sequence[Site],
        activation_timeout: float,
        confirm_timeout: float,
        confirm_window: int,
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
        self.generation = progress.generation
        if progress.state == State.SWITCHED:
            self.decides_by = _seconds_from_now(confirm_window)
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
            f"{self.host.name}: lost the host while its activation ran ({error.message}). It keeps the new "
            f"generation only if this deploy confirmed it. {self.leave_message()}",
            Outcome.FAILED,
        )

    def _report_boot_failure(self, activation_id: str, progress: supervisor.Progress) -> NoReturn:
        """The new generation runs and passed its checks, but a reboot would not start it."""
        log = self._on_host(lambda remote: supervisor.result(remote, activation_id)).log
        reason = f"switch-to-configuration boot exited with {progress.boot_status}"
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
        progress: supervisor.Progress,
        sites: Sequence[Site],
    ) -> NoReturn:
        """Say how a failed activation ended (its supervisor recorded it and unlocked): raise DeployFailed."""
        assert self.activation_id is not None
        host, generation, activation_id = self.host, progress.generation, self.activation_id
        reason = result.reason or failure or f"the activation ended as '{result.state}'"
        if result.state == State.SUPERSEDED:
            raise DeployFailed(f"{host.name}: {reason}.", Outcome.FAILED)
        details = self._activation_details(result, reason, activation_id, sites)
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
                with log.step("health check") as step:
                    report = health.check(
                        self.remote, host.address, sites, host.timeouts.health, stop=self.stopping
                    )
                    step.failed = bool(report.problems) or self.stopping.is_set()
                problems = report.problems
            except DjdeployError as exc:
                problems = (f"it could not run: {exc.message}",)
            failure = "the health check failed: " + "; ".join(problems) if problems else None
            if failure is None and self.options.verify:
                from djdeploy.ops import verify  # testinfra: imported only for --verify

                with log.step("verify (named checks of the deployed state)") as step:
                    failed = [r for r in verify.check_host(self.remote, host.address, sites) if not r.passed]
                    step.failed = bool(failed)
                if failed:
                    failure = "the checks failed: " + "; ".join(
                        f"{r.check}{f' ({r.site})' if r.site else ''}: {r.detail}" for r in failed
                    )
            if self.stopping.is_set():
                failure = STOPPED_REASON
            if failure is None:
                with log.step("confirm over a new SSH connection"):
                    try:
                        with fresh_connection.result() as fresh:
                            supervisor.confirm(
                                fresh, activation_id, then=self._migrated(activation_id, sites)
                            )
                    except DjdeployError as exc:
                        failure = f"a new SSH connection to the switched host failed: {exc.message}"
            else:
                with suppress(DjdeployError):
                    fresh_connection.result().close()
        if failure is not None:
            reason, units = failure, [*(unit for site in sites for unit in site.units), CADDY_UNIT]
            self._on_host(lambda remote: supervisor.reject(remote, activation_id, reason, units))
        return failure

    @staticmethod
    def _migrated(activation_id: str, sites: Sequence[Site]) -> str:
        """What the confirmation records for `status`: the sites this activation migrated have nothing to
        apply, so the first status after a deploy starts no Django."""
        return migrated_command(sites, f"{supervisor.directory(activation_id)}/started")

    def _wait(self, activation_id: str, states: Set[State], timeout: float) -> supervisor.Progress:
        """Wait for the supervisor; after a dropped connection, ask again over a new one."""
        return self._on_host(lambda remote: supervisor.wait_for(remote, activation_id, states, timeout))


# Why a stopped deploy rolled back, as the host records it.
STOPPED_REASON = "the deployer was stopped (Ctrl-C)"


def interrupt_reason(error: BaseException) -> str:
    return STOPPED_REASON if isinstance(error, KeyboardInterrupt) else f"unexpected error: {error!r}"


def _seconds_from_now(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


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
    cause = unit_failures.cause(error.unit, error.journal)
    return (
        f"{error.unit} failed{f': {cause}' if cause else '.'} The end of its journal:\n{journal}\n"
        f"More with `{logs_command(host, own_site)}`."
    )


def _prefix(log: StepLog) -> str:
    return f"[bold]{log.host}[/] " if log.show_host else ""
