"""A throwaway database of the kind the run uses, for tests that move the schema around.

The shared test database stays at head for every other test; migration and readiness tests
get their own: a file on the SQLite leg, a freshly created database on the PostgreSQL leg.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

PG_ENV = "ALLYAPI_TEST_POSTGRES_URL"


def _admin(sql: str, server: str) -> None:
    dsn = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)

    async def run() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@contextmanager
def scratch_database(folder: Path) -> Iterator[str]:
    """Yields the URL of an empty database, removed afterwards."""
    server = os.environ.get(PG_ENV)
    if not server:
        yield f"sqlite+aiosqlite:///{folder / f'scratch-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"allyapi_scratch_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"', server)
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', server)


@asynccontextmanager
async def scratch_database_in_thread(folder: Path) -> AsyncIterator[str]:
    """``scratch_database`` for async tests: creating and dropping a PostgreSQL database runs
    its own event loop, so both happen in a worker thread."""
    with ExitStack() as stack:
        url = await asyncio.to_thread(stack.enter_context, scratch_database(folder))
        try:
            yield url
        finally:
            await asyncio.to_thread(stack.close)
