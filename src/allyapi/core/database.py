"""Engine, sessions and the per-request transaction.

One ``AsyncSession`` per request, committed by the ``get_session`` dependency after the
handler returns and rolled back on any error: the only commit point of a request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from allyapi.core.settings import Settings

logger = logging.getLogger("allyapi.database")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_conn: Any, _: ConnectionPoolEntry) -> None:
    """Set on every new connection: WAL (readers never block the writer), a 5 s busy timeout
    (a writer waits for the lock instead of failing at once), foreign keys (off by default in
    SQLite), synchronous=NORMAL (durable at WAL checkpoints; safe with WAL).

    Why no ``BEGIN IMMEDIATE``: the driver keeps pysqlite's default transaction handling, where
    a SELECT runs outside a transaction and the first INSERT/UPDATE/DELETE opens one and takes
    the write lock at once. So no transaction ever holds a read snapshot and then asks to
    write (the lock upgrade that fails with ``database is locked`` whatever the busy timeout);
    writers simply queue on the busy timeout. tests/reliability/test_sqlite_default.py fires
    concurrent writes through one app to keep it so. Races are held by conditional UPDATEs and
    constraints, not by read-then-write isolation.
    """
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 5})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 15},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.effective_database_url
        self.engine = make_engine(self.url, pool_size=settings.db_pool_size)
        self.sessionmaker = make_sessionmaker(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()


def sync_engine_of(engine: AsyncEngine) -> Engine:
    return engine.sync_engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await _rollback_quietly(session)
            raise


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
