"""The per-request transaction (ARCHITECTURE.md): a 2xx means stored, and a lost database is a 503.

``Session`` commits in its dependency *before* the response is sent (``scope="function"``), so
a commit that fails turns into an error response, never into a 2xx for a write that is not
there. Which errors are a retryable 503 and which stay a 500 is decided in ``dbfaults``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event, orm
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from allyapi.app import create_app
from allyapi.core.db.faults import unavailable
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.resources.models import Resource
from tests.helpers import TokenFactory, assert_problem


def _operational() -> Exception:
    return sa_exc.OperationalError("COMMIT", {}, ConnectionResetError("peer reset"))


def _invalidated() -> Exception:
    return sa_exc.DBAPIError(
        "COMMIT", {}, RuntimeError("connection lost"), connection_invalidated=True
    )


def _pool_timeout() -> Exception:
    return sa_exc.TimeoutError("QueuePool limit reached")


def _integrity() -> Exception:
    return sa_exc.IntegrityError("COMMIT", {}, RuntimeError("deferred constraint"))


def _wrapped_driver_error() -> Exception:
    """The shape SQLAlchemy gives asyncpg's errors: a DBAPIError whose ``orig`` was raised
    from the driver's exception."""
    adapted = RuntimeError("adapted")
    adapted.__cause__ = asyncpg.exceptions.CannotConnectNowError("starting up")
    return sa_exc.DBAPIError("SELECT 1", {}, adapted)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_operational, True),
        (_invalidated, True),
        (_pool_timeout, True),
        (_wrapped_driver_error, True),
        (lambda: ConnectionRefusedError(111, "refused"), True),
        (lambda: asyncpg.exceptions.ConnectionDoesNotExistError("closed"), True),
        (lambda: asyncpg.exceptions.AdminShutdownError("terminating"), True),
        # Rolled back whole by the server: sending the request again is safe.
        (lambda: asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), True),
        (lambda: asyncpg.exceptions.SerializationError("could not serialize"), True),
        (_integrity, False),
        (lambda: sa_exc.DBAPIError("SELECT 1", {}, RuntimeError("syntax")), False),
        (lambda: ValueError("a bug"), False),
    ],
)
def test_which_errors_mean_the_database_is_unavailable(
    make: Callable[[], Exception], expected: bool
) -> None:
    assert unavailable(make()) is expected


class _Tracking(orm.Session):
    """Remembers that a flush wrote a resource (the identity map only holds weak references,
    so the object itself may be gone by the time the dependency commits)."""


@event.listens_for(_Tracking, "after_flush")
def _note_resource(session: orm.Session, _: object) -> None:
    if any(isinstance(obj, Resource) for obj in session.new):
        session.info["wrote_resource"] = True


class _CommitFails(AsyncSession):
    """Fails the commit of a request whose INSERT of a resource already reached the database.
    Other sessions (the rate limiter's) commit normally."""

    error: Callable[[], Exception] = _operational

    async def commit(self) -> None:
        if self.info.get("wrote_resource"):
            raise type(self).error()
        await super().commit()


@pytest.fixture
async def failing_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    database = Database(settings)
    database.sessionmaker = async_sessionmaker(
        database.engine,
        class_=_CommitFails,
        sync_session_class=_Tracking,
        expire_on_commit=False,
        autoflush=False,
    )
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("error", "status"),
    [(_operational, 503), (_invalidated, 503), (_pool_timeout, 503), (_integrity, 500)],
)
async def test_a_commit_that_fails_answers_an_error_and_stores_nothing(
    failing_client: httpx.AsyncClient,
    session: AsyncSession,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
    error: Callable[[], Exception],
    status: int,
) -> None:
    monkeypatch.setattr(_CommitFails, "error", staticmethod(error))

    response = await failing_client.post(
        "/v1/resources",
        json={"name": "Never stored", "category": "guide"},
        headers=tokens.coordinator,
    )

    body = assert_problem(response, status)
    assert "COMMIT" not in response.text
    assert "constraint" not in response.text
    if status == 503:
        assert response.headers["Retry-After"] == "2"
        assert body["detail"] == "The service is briefly unavailable; retry shortly"
    count = await session.scalar(
        sa.select(sa.func.count()).where(col(Resource.name) == "Never stored")
    )
    assert count == 0


async def test_reads_still_work_when_no_write_commits(
    failing_client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """The failing session only breaks commits of writes: a read through it answers 200."""
    response = await failing_client.get("/v1/resources", headers=tokens.coordinator)
    assert response.status_code == 200
