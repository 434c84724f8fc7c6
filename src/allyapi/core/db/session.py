"""Engine, sessions and the per-request transaction.

One ``AsyncSession`` per request, committed by the ``get_session`` dependency after the
handler returns and rolled back on any error: the only commit point of a request.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_

from allyapi.core.db.directory_cache import DirectoryCache, DirectoryListener
from allyapi.core.http.readcount import ReadCounter
from allyapi.core.logging import cap_driver_loggers
from allyapi.core.settings import Settings

logger = logging.getLogger("allyapi.database")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_conn: Any, _: ConnectionPoolEntry) -> None:
    """Set on every new connection: WAL (readers never block the writer), a 5 s busy timeout
    (a writer waits for the lock instead of failing at once), foreign keys (off by default in
    SQLite), synchronous=NORMAL (durable at WAL checkpoints; safe with WAL).

    Session transactions start with ``BEGIN IMMEDIATE`` (see ``_sqlite_begin``): pysqlite's default
    runs a SELECT outside any transaction, so a read ``FOR UPDATE`` (ignored by SQLite) and the
    write after it were not atomic: a concurrent accept and cancel of one request both
    succeeded and released its capacity twice. Taking the write lock at BEGIN serialises
    writers for the whole read-modify-write, as row locks do on PostgreSQL, and never asks
    to upgrade a read snapshot (the upgrade that fails with ``database is locked`` whatever
    the busy timeout); writers simply queue on the busy timeout. WAL readers outside a
    transaction (none of ours) would still not block.
    """
    cursor = dbapi_conn.cursor()
    # Deleted and overwritten content is zeroed in the file instead of lingering in free
    # pages: an erased request's bytes leave the database file (docs/request-lifecycle.md).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_manual_begin(dbapi_conn: Any, _: ConnectionPoolEntry) -> None:
    dbapi_conn.isolation_level = None  # the driver opens no transaction; _sqlite_begin does


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# A connection idle longer than this is pinged before use; a busier one is not (see below).
PING_AFTER_IDLE_SECONDS = 10.0
_CHECKED_IN_AT = "allyapi_checked_in_at"


def _note_checkin(_: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _has_unread_input(driver: Any) -> bool:
    """An idle pooled connection has nothing to say: bytes waiting on its socket are the
    server's goodbye (an administrator's or a restart's termination notice, then EOF) that the
    event loop has not read yet, so ``is_closed()`` cannot know. One ``select`` with a zero
    timeout, no round trip. Before this, the request's first statement met the dead
    connection and answered 503 (the read rate limit's statement, which used to come first
    and retried, had hidden it)."""
    transport = getattr(driver, "_transport", None)
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _check_alive(dbapi_conn: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection) -> None:
    """Replaces ``pool_pre_ping``, which cost three round trips (BEGIN, ``;``, ROLLBACK) on
    every checkout: about 15 % of the hot paths' throughput (bench/RESULTS.md).

    - A connection the server closed (restart, ``pg_terminate_backend``, idle timeout) is
      known to asyncpg without a round trip: the server's goodbye and the EOF reached the
      event loop, and ``is_closed()`` says so. Checked on every checkout, for free.
    - A connection idle for more than ``PING_AFTER_IDLE_SECONDS`` may have been dropped
      silently on the way (a NAT or firewall forgetting it sends no EOF): it gets one
      ``;`` (one round trip, no transaction), which is when a ping is worth its cost.

    Raising ``DisconnectionError`` makes the pool discard the connection and check out
    another (SQLAlchemy's documented "pessimistic disconnect handling" hook), so the request
    never sees the dead one. Connections that die *while in use* fail that request with a
    503 (core/db/faults.py), as before.
    """
    driver = dbapi_conn.driver_connection
    if driver.is_closed() or _has_unread_input(driver):
        raise DisconnectionError("connection closed by the server")
    checked_in = record.info.get(_CHECKED_IN_AT)  # None: connected just now
    if checked_in is not None and time.monotonic() - checked_in > PING_AFTER_IDLE_SECONDS:
        try:
            await_(driver.fetchrow(";"))
        except Exception as exc:
            raise DisconnectionError("connection failed its ping") from exc


def _dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (languages, topics, contact channels, availability...) through orjson, both
# ways: stdlib json decoding them was about a quarter of the directory's CPU (py-spy).
JSON_OPTIONS: dict[str, Any] = {"json_serializer": _dump_json, "json_deserializer": orjson.loads}


def make_engine(
    url: str, *, pool_size: int = 10, immediate: bool = False, autocommit: bool = False
) -> AsyncEngine:
    """``immediate`` (SQLite only): every transaction takes the write lock at BEGIN.
    ``autocommit``: no transactions at all (each statement commits by itself)."""
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    options.update(JSON_OPTIONS)
    # No bound value in any log line or exception message, at any level (core/logging.py).
    options["hide_parameters"] = True
    cap_driver_loggers()
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 5}, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if immediate:
            event.listen(engine.sync_engine, "connect", _sqlite_manual_begin)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # No overflow: an overflow connection is opened for a burst and closed on its return,
    # so a steady load just above pool_size opened and closed a PostgreSQL connection (TLS
    # probe, auth, backend fork) on most requests: the bench measured it. ``pool_size``
    # connections stay open; a request beyond them waits for one (up to pool_timeout, then
    # 503 + Retry-After).
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 15},
        **options,
    )
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    event.listen(engine.sync_engine, "checkout", _check_alive)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.effective_database_url
        self.engine = make_engine(self.url, pool_size=settings.db_pool_size)
        # Sessions serve requests and jobs (read-modify-write): on SQLite they get their own
        # engine whose transactions take the write lock at BEGIN (see _sqlite_pragmas). The
        # plain engine (readiness, migrations, tests looking at rows) keeps the driver default.
        self.session_engine = (
            make_engine(self.url, immediate=True) if is_sqlite(self.url) else self.engine
        )
        self.sessionmaker = make_sessionmaker(self.session_engine)
        # One statement, no transaction around it: a single-statement read or an atomic
        # upsert costs one round trip instead of three (BEGIN, statement, COMMIT). Its own
        # pool, so no connection switches isolation level on every checkout and checkin
        # (80 µs per request, bench/RESULTS.md): a process holds up to 2 x db_pool_size connections.
        self.autocommit = make_engine(self.url, pool_size=settings.db_pool_size, autocommit=True)
        self.read_counter = ReadCounter(self)
        # Directory pages of this process and what invalidates them (allies/directory_cache.py).
        self.directory_cache = DirectoryCache(listens=not is_sqlite(self.url))
        for engine in {self.engine, self.session_engine, self.autocommit}:
            self.directory_cache.watch(engine)
        self.directory_listener = (
            None if is_sqlite(self.url) else DirectoryListener(self.url, self.directory_cache)
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.read_counter.close()
        if self.directory_listener is not None:
            await self.directory_listener.stop()
        await self.autocommit.dispose()
        await self.engine.dispose()
        if self.session_engine is not self.engine:
            await self.session_engine.dispose()


def sync_engine_of(engine: AsyncEngine) -> Engine:
    return engine.sync_engine


async def checkpoint_sqlite_wal(database: Database) -> None:
    """Move every page of SQLite's write-ahead log into the database file and empty the log.

    With WAL, a change is appended to the log and reaches the file only at a checkpoint; the
    log keeps the pages as they were before, so an erased request stayed readable there
    until SQLite's next automatic checkpoint. ``TRUNCATE`` waits (busy timeout) for readers
    of older snapshots, copies the pages (zeroed content with ``secure_delete``) and cuts the
    log to zero bytes. No-op on PostgreSQL. Never raises: the erasure already committed.
    """
    if database.dialect != "sqlite":
        return
    try:
        async with database.autocommit.connect() as connection:
            result = await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            busy = result.scalar()
    except Exception as exc:
        logger.warning("wal checkpoint failed: %s", type(exc).__name__)
        return
    if busy:
        logger.warning("wal checkpoint incomplete: readers still on older snapshots")


_AFTER_COMMIT = "allyapi_checkpoint_after_commit"


def checkpoint_after_commit(session: AsyncSession) -> None:
    """Ask ``get_session`` to checkpoint SQLite's log once this request's transaction has
    committed (a checkpoint cannot move pages of a transaction still open)."""
    session.info[_AFTER_COMMIT] = True


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session. One the route never used (the create's one-statement path,
    a refusal before any read) is neither committed nor closed: it holds no connection and
    no objects, and those two calls were a measurable part of the create (bench/RESULTS.md)."""
    database: Database = request.app.state.database
    session = database.sessionmaker()
    used = True
    try:
        yield session
        used = _touched(session)
        if used:
            await session.commit()
    except BaseException:
        await _rollback_quietly(session)
        raise
    finally:
        if used:
            await session.close()
    if session.info.pop(_AFTER_COMMIT, False):
        await checkpoint_sqlite_wal(database)


def _touched(session: AsyncSession) -> bool:
    """Whether the session began a transaction or holds objects a commit would write."""
    return bool(session.in_transaction() or session.new or session.dirty or session.deleted)


async def _rollback_quietly(session: AsyncSession) -> None:
    """Roll back, but let the *original* error decide the response.

    When the connection died (the usual reason the request failed), the rollback fails as well;
    its error would replace the one that explains the failure. The server's side of the
    transaction is gone with the connection, so nothing is left half-written either way, and
    the pool discards the broken connection when the session closes.
    """
    try:
        await session.rollback()
    except Exception as exc:
        logger.warning("rollback failed: %s", type(exc).__name__)


# scope="function": commit before the response is sent, so a 2xx always means "stored".
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_autocommit(request: Request) -> AsyncIterator[AsyncConnection]:
    """A Core connection in autocommit: each statement is its own transaction.

    For a route's single read (one statement is its own consistent snapshot; what is saved
    is the BEGIN and COMMIT round trips and the ORM session, bench/RESULTS.md), or for a count that
    must commit apart from the request's transaction (the anonymous feedback quota). A route
    that reads twice and needs them consistent, or writes, takes a ``Session``.
    """
    database: Database = request.app.state.database
    async with database.autocommit.connect() as connection:
        yield connection


# scope="function": the connection goes back to the pool before the response is sent.
Autocommit = Annotated[AsyncConnection, Depends(get_autocommit, scope="function")]
