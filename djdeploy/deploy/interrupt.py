"""Ctrl-C during a deploy: the first stops every host run and waits (bounded) for the hosts' outcome; the
second leaves at once, the hosts deciding by themselves.

Host runs work in threads; Ctrl-C reaches the main thread only, which waits for them here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from typing import Generic, Protocol, TypeVar

from djdeploy.errors import DjdeployError
from djdeploy.remote import process

T = TypeVar("T")


class Stoppable(Protocol):
    """A host run as the first and second Ctrl-C see it."""

    def interrupt(self) -> None:
        """Say at once what stopping does to the host, and start it (reject its activation)."""

    def leave_message(self) -> str:
        """What the host does by itself once the deployer has left."""

    @property
    def stop_seconds(self) -> float:
        """How long the host may take to reach its outcome once stopped."""


class Stopped(DjdeployError):
    """Ctrl-C: every host run was told to stop; results holds those that ended within the bound."""

    def __init__(self, message: str, results: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.results = list(results)


class LeftEarly(DjdeployError):
    """A second Ctrl-C, or hosts still deciding after the bound: the deployer leaves, the hosts decide."""


class Stopper(Generic[T]):
    """Runs host jobs in threads; turns Ctrl-C into a stop of each host run registered by them."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.event = threading.Event()
        self.say = say
        self._runs: list[Stoppable] = []
        self._lock = threading.Lock()

    def register(self, run: Stoppable) -> None:
        with self._lock:
            self._runs.append(run)
        if self.event.is_set():  # registered after the Ctrl-C: it stops at its next step
            run.interrupt()

    def run(self, jobs: Sequence[Callable[[], T]], parallel: int) -> list[T]:
        """Each job's result, in order; raise Stopped (or LeftEarly) after a Ctrl-C."""
        pool = ThreadPoolExecutor(max_workers=max(1, parallel))
        futures = [pool.submit(job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            raise self._stop(futures) from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _stop(self, futures: Sequence[Future[T]]) -> DjdeployError:
        """The first Ctrl-C: stop every run and wait for the hosts' outcome; a second Ctrl-C cuts it short."""
        self.event.set()
        process.stop_children()  # a copy under way ends now (a terminal's Ctrl-C reaches it by itself)
        with self._lock:
            runs = list(self._runs)
        try:
            for stoppable in runs:
                stoppable.interrupt()
            bound = max((stoppable.stop_seconds for stoppable in runs), default=10.0)
            _, pending = wait(futures, timeout=bound)
        except KeyboardInterrupt:
            return LeftEarly("Leaving now. " + " ".join(stoppable.leave_message() for stoppable in runs))
        if pending:
            return LeftEarly(
                f"Some hosts had not ended {bound:.0f} s after the stop. "
                + " ".join(stoppable.leave_message() for stoppable in runs)
            )
        results = []
        for future in futures:
            with suppress(Exception):
                results.append(future.result())
        return Stopped("Stopped by Ctrl-C.", results)
