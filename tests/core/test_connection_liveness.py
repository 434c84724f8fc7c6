"""The pool's liveness check (core/db/session.py ``_check_alive``), which replaced pre-ping.

Dead connections must never reach a request; live, busy ones must not pay a round trip.
PostgreSQL only: SQLite has no server to close a connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from allyapi.core.db import session as database_module
from allyapi.core.db.session import make_engine
from tests.helpers import backend_pid, terminate_backend

pytestmark = pytest.mark.postgres_only


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(migrated_url, pool_size=1)
    yield engine
    await engine.dispose()


async def test_a_connection_the_server_closed_is_replaced_before_use(
    engine: AsyncEngine, migrated_url: str
) -> None:
    first = await backend_pid(engine)
    await terminate_backend(migrated_url, first)
    await asyncio.sleep(0.2)  # the server's goodbye and EOF reach the event loop
    assert await backend_pid(engine) != first


async def test_a_silently_dropped_idle_connection_fails_its_ping_and_is_replaced(
    engine: AsyncEngine, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await backend_pid(engine)
    await terminate_backend(migrated_url, first)
    await asyncio.sleep(0.2)
    # A dropped route sends no EOF: the client cannot know without asking.
    monkeypatch.setattr(asyncpg.connection.Connection, "is_closed", lambda self: False)
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert await backend_pid(engine) != first


async def test_a_busy_connection_is_not_pinged(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[str] = []
    fetchrow = asyncpg.connection.Connection.fetchrow

    async def counting(self: asyncpg.Connection, query: str, *args: object, **kw: object) -> object:
        if query == ";":
            pings.append(query)
        return await fetchrow(self, query, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", counting)
    first = await backend_pid(engine)
    assert await backend_pid(engine) == first
    assert pings == []
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert await backend_pid(engine) == first  # idle "too long": pinged, alive, kept
    assert pings == [";"]
