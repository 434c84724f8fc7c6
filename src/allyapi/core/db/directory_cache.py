"""Directory pages cached in process, invalidated by the database (docs/performance.md).

A page is the same bytes for every caller of an organisation who gets that view (the public
profile, or the coordinator's), so it is cached per process under: the organisation, its
*generation*, the date (an expiring course unlists an ally at midnight with no write), the
view, the filters, the page size and the cursor's position. Nothing per caller is in a page
or its key; authentication, the role check and the rate limit run on every request before
the cache is looked at.

How a process learns that a generation moved:

- **Its own writes**, at once: every statement that inserts, updates or deletes what the
  directory shows (``touches_directory``) marks its connection, and the connection's return to
  the pool, after its commit or rollback, invalidates this process's pages. A request's
  response is sent after that, so a caller reads their own change.
- **Other processes' writes**, on PostgreSQL: database triggers (migration 0016) bump
  ``directory_generations`` in the writing transaction and ``pg_notify`` it; a dedicated
  connection ``LISTEN``s and invalidates the organisation (milliseconds after the commit).
  While that connection is down (not yet up, lost, reconnecting), pages are neither served
  nor stored from the cache, and on reconnecting everything is invalidated: a notification
  missed while it was down cannot leave a stale page behind.
- **Whatever else**, within ``TTL_SECONDS``: every entry expires, so even a write this
  process cannot hear of (another SQLite process on the same file, a manual fix in psql on a
  server without the triggers) shows within a few seconds.

A page read while a change commits is stored under the generation read *before* the query;
the change's invalidation moves the generation on, so that page is never served afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("allyapi.directory")

TTL_SECONDS = 3.0
MAX_BYTES = 16 * 1024 * 1024  # all cached pages of a process together
CHANNEL = "allyapi_directory"  # migration 0016
PING_SECONDS = 10.0
APPLICATION_NAME = "allyapi-directory-listener"  # how it shows in pg_stat_activity
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
_DIRTY = "allyapi_directory_dirty"

# Tables whose rows the directory shows or decides *listed* from; ally columns that change
# nothing it shows (the load every contact request moves, bookkeeping).
_TABLES = re.compile(r"\b(allies|training_courses|training_records)\b", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(insert|update|delete|with)\b", re.IGNORECASE)
_ALLY_UPDATE = re.compile(
    r"^\s*update\s+allies\s+set\s+(.*?)(?:\s+where\s|\s+returning\s|$)", re.IGNORECASE | re.S
)
_ASSIGNED = re.compile(r"(\w+)\s*=")
_INVISIBLE = frozenset({"open_requests", "updated_at", "version"})


@lru_cache(maxsize=4096)
def touches_directory(statement: str) -> bool:
    """Whether a statement may change what some directory shows (statements repeat: cached)."""
    if not _WRITE.match(statement) or not _TABLES.search(statement):
        return False
    update = _ALLY_UPDATE.match(statement)
    if update is not None:
        assigned = {name.lower() for name in _ASSIGNED.findall(update.group(1))}
        return bool(assigned - _INVISIBLE)
    return True


@dataclass(frozen=True)
class CachedPage:
    body: bytes
    etag: str
    expires: float


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


class DirectoryCache:
    def __init__(self, *, listens: bool) -> None:
        self.epoch = 0  # moved by this process's own writes and by reconnects: every org
        self.generations: dict[str, int] = {}  # moved by notifications: one org
        self.pages: OrderedDict[tuple[Any, ...], CachedPage] = OrderedDict()
        self.size = 0
        # PostgreSQL: usable only while the LISTEN connection is up. SQLite: always.
        self.listens = listens
        self.listening = False
        self.hits = 0
        self.misses = 0

    @property
    def usable(self) -> bool:
        return self.listening or not self.listens

    def version(self, org: str) -> tuple[int, int]:
        return self.epoch, self.generations.get(org, 0)

    def get(self, key: tuple[Any, ...]) -> CachedPage | None:
        if not self.usable:
            return None
        page = self.pages.get(key)
        if page is None or page.expires < time.monotonic():
            self.misses += 1
            return None
        self.pages.move_to_end(key)
        self.hits += 1
        return page

    def put(self, key: tuple[Any, ...], body: bytes) -> CachedPage:
        page = CachedPage(body, etag_of(body), time.monotonic() + TTL_SECONDS)
        if not self.usable:
            return page
        old = self.pages.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self.pages[key] = page
        self.size += len(body)
        while self.size > MAX_BYTES and self.pages:
            _, evicted = self.pages.popitem(last=False)
            self.size -= len(evicted.body)
        return page

    def invalidate(self, org: str, generation: int | None = None) -> None:
        current = self.generations.get(org, 0)
        self.generations[org] = current + 1 if generation is None else max(current + 1, generation)

    def invalidate_all(self) -> None:
        # Old entries are unreachable now; drop them rather than wait for the LRU.
        self.epoch += 1
        self.pages.clear()
        self.size = 0

    def watch(self, engine: AsyncEngine) -> None:
        """This process's writes through ``engine`` invalidate its pages once committed."""

        def after_execute(conn: Any, _c: Any, statement: str, *_: Any) -> None:
            if touches_directory(statement):
                conn.info[_DIRTY] = True

        def on_checkin(_dbapi: Any, record: Any) -> None:
            if record is not None and record.info.pop(_DIRTY, False):
                self.invalidate_all()

        event.listen(engine.sync_engine, "after_cursor_execute", after_execute)
        event.listen(engine.sync_engine.pool, "checkin", on_checkin)


class DirectoryListener:
    """``LISTEN allyapi_directory`` on a connection of its own, reconnecting when it is lost."""

    def __init__(self, url: str, cache: DirectoryCache) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.cache = cache
        self.task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self.server_pid: int | None = None  # the backend listening now (tests, diagnostics)

    def ensure_started(self) -> None:
        """Started by the first directory read (an app under test may never run lifespan)."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        org, _, generation = payload.rpartition(" ")
        try:
            self.cache.invalidate(org, int(generation))
        except ValueError:
            self.cache.invalidate_all()

    def _terminated(self, _conn: Any) -> None:
        self.cache.listening = False
        if self._lost is not None:
            self._lost.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(
                    self.dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME}
                )
                self._lost = asyncio.Event()
                self.server_pid = connection.get_server_pid()
                connection.add_termination_listener(self._terminated)
                await connection.add_listener(CHANNEL, self._notified)
                # Anything committed while nobody listened: forget every page.
                self.cache.invalidate_all()
                self.cache.listening = True
                failures = 0
                await self._until_lost(connection, self._lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unreachable server, refused, reset: try again
                logger.warning("directory listener: %s", type(exc).__name__)
            finally:
                self.cache.listening = False
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 2)
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    @staticmethod
    async def _until_lost(connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Until the server closes the connection; a ping every ``PING_SECONDS`` finds one
        dropped silently on the way (no EOF ever arrives then)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_SECONDS)
            if not lost.is_set():
                await connection.fetchval("SELECT 1", timeout=5)

    async def stop(self) -> None:
        task, self.task = self.task, None
        self.cache.listening = False
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
