"""Core statements run on the driver's connection (core/db/driver.py): the same answers as
SQLAlchemy's own execution, and a connection that dies under one is discarded, not reused.
PostgreSQL only: the hot paths that use it exist only there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from allyapi.core.db import session as database_module
from allyapi.core.db.driver import ConnectionLost, DriverStatement, sqlstate_of
from allyapi.core.db.session import Database
from allyapi.core.http.errors import install_error_handlers
from allyapi.core.http.ratelimit import count_request
from allyapi.core.settings import Settings
from tests.helpers import backend_pid, terminate_backend

pytestmark = pytest.mark.postgres_only

ROW = sa.select(
    sa.bindparam("n", type_=sa.Integer()) + 1,
    sa.cast(sa.bindparam("doc", type_=sa.JSON()), sa.JSON()),
    sa.literal("fixed"),  # a value the statement binds itself
    sa.bindparam("n", type_=sa.Integer()) * 2,  # a name used twice
)


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.model_copy(update={"db_pool_size": 1}))
    yield database
    await database.dispose()


async def _kill_the_pooled_connection(database: Database, url: str) -> int:
    """Terminate the backend of the pool's one connection; its pid."""
    pid = await backend_pid(database.autocommit)
    await terminate_backend(url, pid)
    await asyncio.sleep(0.2)  # the server's goodbye and EOF reach the event loop
    return pid


async def test_the_driver_answers_what_sqlalchemy_answers(own_database: Database) -> None:
    params = {"n": 20, "doc": {"languages": ["en", "cy"], "note": "ü"}}
    async with own_database.autocommit.connect() as connection:
        expected = tuple((await connection.execute(ROW, params)).one())
        statement = DriverStatement.compile(ROW, connection.dialect)
        row = await statement.fetchrow(connection, params)
    assert tuple(row.values()) == expected == (21, params["doc"], "fixed", 40)


async def test_a_refusal_inside_the_statement_keeps_its_sqlstate(own_database: Database) -> None:
    refusing = sa.select(sa.literal_column("1") / sa.bindparam("zero", type_=sa.Integer()))
    async with own_database.autocommit.connect() as connection:
        with pytest.raises(asyncpg.PostgresError) as raised:
            await DriverStatement.compile(refusing, connection.dialect).fetchrow(
                connection, {"zero": 0}
            )
    assert sqlstate_of(raised.value) == "22012"


async def test_a_connection_that_dies_under_a_statement_is_discarded(
    own_database: Database, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _kill_the_pooled_connection(own_database, migrated_url)
    # As if the goodbye had not been read yet: the checkout's check lets it through.
    monkeypatch.setattr(asyncpg.connection.Connection, "is_closed", lambda self: False)
    monkeypatch.setattr(database_module, "_has_unread_input", lambda driver: False)
    with pytest.raises(ConnectionLost):
        async with own_database.autocommit.connect() as connection:
            await DriverStatement.compile(sa.select(1), connection.dialect).fetchrow(connection, {})
    monkeypatch.undo()
    assert await backend_pid(own_database.autocommit) != first


async def test_the_write_count_retries_once_on_a_connection_that_died(
    own_database: Database, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _kill_the_pooled_connection(own_database, migrated_url)
    monkeypatch.setattr(database_module, "_has_unread_input", lambda driver: False)
    real = asyncpg.connection.Connection.is_closed
    calls: list[bool] = []

    def alive_at_the_first_checkout(self: asyncpg.Connection) -> bool:
        calls.append(True)
        return False if len(calls) == 1 else real(self)

    monkeypatch.setattr(asyncpg.connection.Connection, "is_closed", alive_at_the_first_checkout)
    count, _ = await count_request(own_database, "driver-retry", "writes")
    assert count == 1
    assert await backend_pid(own_database.autocommit) != first


async def test_a_lost_connection_answers_503_not_500() -> None:
    """``ConnectionLost`` is no DBAPIError: the handlers must still see it as the database
    being unreachable (the create's statement is the first of its request)."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/lost")
    async def lost() -> None:
        raise ConnectionLost("the database connection failed under the statement")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/lost")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
