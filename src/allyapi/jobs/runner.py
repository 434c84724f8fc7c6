"""A periodic task inside the server process (expiry, retention purge, key cleanup).

Every process runs its own runner; the jobs themselves are safe to run concurrently (see
contact_requests/jobs.py), so no leader election is needed. The interval is jittered so
several processes started together do not hit the database in lockstep. A failing run is
logged with the exception *type* only (a message or traceback could quote row data) and the
next run happens as usual. ``stop()`` lets a run in progress finish (bounded), then returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

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
