"""The ``reads`` rate limit counted in process, with the database as the shared budget.

Every /v1 read used to run the rate-limit upsert (core/http/ratelimit.py) before doing anything
else: a database round trip on the hottest path, the directory included. Reads are now
counted here and flushed to the same ``rate_limit_buckets`` rows in batches:

- A caller's first read in a window (or the first after ``STALE_SECONDS`` without a refresh)
  runs the upsert synchronously, as before: it learns the window (on the database's clock)
  and the count every process has flushed so far.
- Further reads in that window add to a local ``pending`` count and are decided on
  ``shared + in flight + pending``; a background flush every ``FLUSH_SECONDS`` adds the pending
  count to the row (``count = count + n``) and reads back the new total,
  which includes the other processes' flushed reads.

The bound. In one process the count is exact (every read of the caller passes here, and the
row holds the rest). With N processes, a process decides on a shared total at most
``STALE_SECONDS`` old, and other processes' reads reach the row within ``FLUSH_SECONDS``:
the reads a caller gets in one window are at most ``limit + (N - 1) * r * (STALE_SECONDS +
FLUSH_SECONDS)``, r being the caller's read rate at one process; at the default of 300 a
minute, polling four processes as fast as they answer buys at most the limit plus what the
other three answer in 1.2 s each, once per window. Writes keep the synchronous count
(exact across processes): they are what a create's race rules and abuse limits rely on.

A window that ends with reads not yet flushed drops them: the window is over for every
process (one database clock), so they no longer decide anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

if TYPE_CHECKING:
    from allyapi.core.db.session import Database

logger = logging.getLogger("allyapi.ratelimit")

WINDOW_SECONDS = 60
FLUSH_SECONDS = 0.2
STALE_SECONDS = 1.0
PRUNE_AT = 10_000  # windows kept before ended ones are dropped

# Two statements, not UPDATE ... RETURNING: SQLite keeps the write lock until a RETURNING
# statement's rows have been read, and a flush runs between requests, when the event loop may
# be paused (an app driven by a test harness): the lock then outlived the flush. A plain
# UPDATE in autocommit is finished, and its lock released, when it returns.
_ADD = (
    "UPDATE rate_limit_buckets SET count = count + :n "
    "WHERE key = :key AND policy = :policy AND window_start = :window"
)
_READ = (
    "SELECT count FROM rate_limit_buckets "
    "WHERE key = :key AND policy = :policy AND window_start = :window"
)


@dataclass
class _Window:
    start: int  # window start, Unix seconds on the database's clock
    offset: float  # database seconds minus time.monotonic() at the last synchronous count
    shared: int  # the row's count at the last synchronous count or flush (all processes)
    refreshed: float  # time.monotonic() of that
    pending: int = 0  # counted here, not yet flushed
    flushing: int = 0  # in the flush running now

    def used(self) -> int:
        return self.shared + self.flushing + self.pending

    def reset_in(self, now: float) -> int:
        return max(int(self.start + WINDOW_SECONDS - (now + self.offset)), 1)


class ReadCounter:
    """One per process (per ``Database``): the caller's read count and seconds to reset."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.windows: dict[tuple[str, str], _Window] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._add, self._read = text(_ADD), text(_READ)

    async def count(self, key: str, policy: str) -> tuple[int, int]:
        now = time.monotonic()
        window = self.windows.get((key, policy))
        if (
            window is not None
            and now + window.offset < window.start + WINDOW_SECONDS
            and now - window.refreshed <= STALE_SECONDS
        ):
            window.pending += 1
            self._schedule_flush()
            return window.used(), window.reset_in(now)
        from allyapi.core.http.ratelimit import count_request_at  # the shared upsert

        count, start, db_now = await count_request_at(self.database, key, policy)
        after = time.monotonic()
        current = self.windows.get((key, policy))
        if current is not None and current.start == start:
            # Reads counted locally since stay pending; the row's count is the newer total
            # (it may already hold the reads in flight: counting them twice errs safe).
            current.shared = max(current.shared, count)
            current.offset, current.refreshed = db_now - after, after
            return current.used(), current.reset_in(after)
        if len(self.windows) >= PRUNE_AT:
            self._prune(after)
        self.windows[(key, policy)] = _Window(start, db_now - after, count, after)
        return count, max(start + WINDOW_SECONDS - db_now, 1)

    def _prune(self, now: float) -> None:
        for name, window in list(self.windows.items()):
            if now + window.offset >= window.start + WINDOW_SECONDS and not window.flushing:
                del self.windows[name]

    def _schedule_flush(self) -> None:
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Adds every pending count to its row, one statement per caller, one connection."""
        due = [(name, w) for name, w in self.windows.items() if w.pending]
        if not due:
            return
        for _, window in due:
            window.flushing, window.pending = window.pending, 0
        try:
            async with self.database.autocommit.connect() as connection:
                for (key, policy), window in due:
                    params = {"key": key, "policy": policy, "window": window.start}
                    await connection.execute(self._add, {**params, "n": window.flushing})
                    row = (await connection.execute(self._read, params)).first()
                    if row is not None:  # None: the window's row was swept (it ended)
                        window.shared = int(row[0])
                        window.refreshed = time.monotonic()
                    else:
                        window.shared += window.flushing
                    window.flushing = 0
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            # Kept as pending: the next flush tries again, and decisions still count them.
            logger.warning("read count flush failed: %s", type(exc).__name__)
            for _, window in due:
                window.pending += window.flushing
                window.flushing = 0

    async def close(self) -> None:
        task, self._flush_task = self._flush_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # closing anyway
                await task
        try:
            await self.flush()
        except Exception as exc:  # the engine may be gone already at shutdown
            logger.warning("read count flush at close failed: %s", type(exc).__name__)
