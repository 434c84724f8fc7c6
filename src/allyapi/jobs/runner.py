"""The background jobs' runner: every job of ``registry.py`` started from one place.

A :class:`Job` is a small class: a ``name``, an ``interval_seconds(settings)`` (0 = off) and
``run(database, settings)``, one pass of its work. :class:`JobRunner` is started once, by the
app lifespan (``create_app``, so every ``allyapi serve`` worker runs it), and gives each job
its own :class:`PeriodicRunner`.

Every process runs its own runner; the jobs themselves are safe to run concurrently (claimed
rows with ``FOR UPDATE SKIP LOCKED``, guarded updates, advisory locks: see each job), so no
leader election is needed. The interval is jittered so
several processes started together do not hit the database in lockstep. A failing run is
logged with the exception *type* only (a message or traceback could quote row data) and the
next run happens as usual. ``stop()`` lets a run in progress finish (bounded), then returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from allyapi.core.db.session import Database
from allyapi.core.settings import Settings

logger = logging.getLogger("allyapi.background")

JITTER = 0.2  # ±20 % of the interval
STOP_GRACE_SECONDS = 10.0


class PeriodicRunner:
    def __init__(
        self,
        name: str,
        job: Callable[[], Awaitable[object]],
        interval_seconds: float,
        *,
        jitter: float = JITTER,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval must be positive (0 disables the runner: don't build one)")
        self.name = name
        self._job = job
        self._interval = interval_seconds
        self._jitter = jitter
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.failures = 0

    def _next_delay(self) -> float:
        spread = self._interval * self._jitter
        return max(0.0, self._interval + random.uniform(-spread, spread))  # noqa: S311 - not crypto

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"periodic:{self.name}")

    async def run_once(self) -> None:
        """One run; never raises (a failure is counted and logged without any data)."""
        try:
            await self._job()
        except Exception as exc:  # the runner must survive any job failure
            self.failures += 1
            logger.warning("background job %s failed: %s", self.name, type(exc).__name__)
        finally:
            self.runs += 1

    async def _loop(self) -> None:
        # The first run also waits a (random) interval: a restart storm of many processes
        # must not run every job at once.
        delay = random.uniform(0, self._interval)  # noqa: S311 - not crypto
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            await self.run_once()
            delay = self._next_delay()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=STOP_GRACE_SECONDS)
        except TimeoutError:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                logger.warning("background job %s cancelled at shutdown", self.name)


class Job(ABC):
    """One kind of background work; subclasses set ``name`` and implement ``run``."""

    name: ClassVar[str]

    def interval_seconds(self, settings: Settings) -> float:
        """Seconds between runs in a server; 0 leaves the job to ``allyapi purge`` (cron)."""
        return settings.jobs_interval_seconds

    @abstractmethod
    async def run(self, database: Database, settings: Settings) -> object:
        """One pass of the job's work; what it returns is only logged by tests and tools."""

    async def close(self) -> None:  # noqa: B027 - optional: most jobs hold nothing open
        """Release what ``run`` opened (a client); called once when the server stops."""


class JobRunner:
    """Every enabled job on its own jittered runner, started and stopped together."""

    def __init__(self, jobs: Sequence[Job], settings: Settings, database: Database) -> None:
        self.jobs = list(jobs)
        self.runners = [
            PeriodicRunner(
                job.name, _bound(job, database, settings), job.interval_seconds(settings)
            )
            for job in self.jobs
            if job.interval_seconds(settings) > 0
        ]

    def start(self) -> None:
        for runner in self.runners:
            runner.start()

    async def stop(self) -> None:
        """Each run in progress finishes (bounded); then the jobs release what they hold."""
        for runner in reversed(self.runners):
            await runner.stop()
        for job in self.jobs:
            await job.close()


def _bound(job: Job, database: Database, settings: Settings) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        return await job.run(database, settings)

    return run
