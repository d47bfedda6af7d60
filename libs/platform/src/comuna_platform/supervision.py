"""Background workers that cannot die quietly.

Every long-running task of a service (the outbox relay, each event consumer, the parked-messages
gauge) runs under a `Supervisor`: when it raises, the error is logged with the worker's name and
the task starts again after an exponential back-off (capped), until the service stops. Whether
each worker is running, and healthy by its own account, is what `/readyz` reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

WORKER_UP = Gauge("comuna_worker_up", "1 while a background worker runs, 0 while it waits to restart", ["worker"])
WORKER_RESTARTS = Counter("comuna_worker_restarts_total", "Background worker restarts after a failure", ["worker"])

# `run(stop)` works until `stop` is set.
WorkerRun = Callable[[asyncio.Event], Awaitable[None]]
# None when healthy, else a short reason (e.g. "no fetch completed for 42 s").
WorkerHealth = Callable[[], str | None]


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: `initial`, doubled each time, never above `cap`."""

    initial: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.initial * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class Worker:
    name: str
    run: WorkerRun
    health: WorkerHealth | None = None


@dataclass
class WorkerState:
    running: bool = False
    failures: int = 0
    restarts: int = 0
    last_error: str | None = None


@dataclass
class Supervisor:
    """Runs workers until `stop` is set, restarting each one that fails."""

    stop: asyncio.Event
    backoff: Backoff = field(default_factory=Backoff)
    # A worker that ran this long before failing is considered to have recovered: its next
    # restart starts again from the initial delay.
    healthy_after: float = 60.0
    workers: list[Worker] = field(default_factory=list)
    states: dict[str, WorkerState] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def add(self, worker: Worker) -> None:
        if worker.name in self.states:
            raise ValueError(f"worker {worker.name} declared twice")
        self.workers.append(worker)
        self.states[worker.name] = WorkerState()

    def start(self) -> list[asyncio.Task[None]]:
        """Start every declared worker under supervision; the tasks end when `stop` is set."""
        if self._tasks:
            return list(self._tasks)
        self._tasks = [asyncio.create_task(self._supervise(w), name=f"worker-{w.name}") for w in self.workers]
        return list(self._tasks)

    def problem(self, name: str) -> str | None:
        """Why worker `name` is not ready, or None when it runs and reports itself healthy."""
        state = self.states[name]
        if not state.running:
            return f"not running ({state.last_error})" if state.last_error else "not running"
        worker = next(w for w in self.workers if w.name == name)
        return worker.health() if worker.health is not None else None

    def readiness_checks(self) -> Sequence[tuple[str, Callable[[], Awaitable[bool]]]]:
        """One `/readyz` check per worker, named `worker:<name>`."""
        return [(f"worker:{w.name}", self._check(w.name)) for w in self.workers]

    def _check(self, name: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            problem = self.problem(name)
            if problem is not None:
                log.warning("worker not ready: %s", problem, extra={"worker": name})
            return problem is None

        return check

    async def _supervise(self, worker: Worker) -> None:
        state = self.states[worker.name]
        while not self.stop.is_set():
            started = time.monotonic()
            state.running = True
            WORKER_UP.labels(worker.name).set(1)
            try:
                await worker.run(self.stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if time.monotonic() - started >= self.healthy_after:
                    state.failures = 0
                state.failures += 1
                log.exception(
                    "worker failed; restarting",
                    extra={"worker": worker.name, "error": state.last_error, "failures": state.failures},
                )
            else:
                if self.stop.is_set():
                    break
                # Workers run until told to stop; returning early is a bug worth restarting over.
                state.last_error = "returned before the service stopped"
                state.failures += 1
                log.error("worker ended unexpectedly; restarting", extra={"worker": worker.name})
            finally:
                state.running = False
                WORKER_UP.labels(worker.name).set(0)
            delay = self.backoff.delay(state.failures)
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
            except TimeoutError:
                state.restarts += 1
                WORKER_RESTARTS.labels(worker.name).inc()
