"""Test harness: the real app, through httpx, on SQLite (default) or PostgreSQL.

``ALLYAPI_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres`` runs the suite
on PostgreSQL: a fresh database is created for the session (so parallel runs never meet),
migrated with Alembic, and dropped at the end. Each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.arrivals import arrive_all
from allyapi.app import create_app
from allyapi.core.db.migrations import upgrade
from allyapi.core.db.session import Database, make_sessionmaker
from allyapi.core.http.ratelimit import SWEPT_WINDOWS
from allyapi.core.settings import Settings
from allyapi.tables import metadata
from tests.contract.ledger import Ledger
from tests.helpers import TokenFactory

PG_ENV = "ALLYAPI_TEST_POSTGRES_URL"
_skipped: list[str] = []
_ledgers: list[Ledger] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """The PostgreSQL leg fails loudly, never quietly skips, when its server is unreachable."""
    server = os.environ.get(PG_ENV)
    if not server:
        return

    async def ping() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(server), timeout=10)
        await connection.close()

    try:
        asyncio.run(ping())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = " in CI" if os.environ.get("CI") else ""
        pytest.exit(
            f"{PG_ENV} is set{where} but PostgreSQL does not answer ({type(exc).__name__}): "
            "the PostgreSQL leg must run, not skip",
            returncode=1,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(PG_ENV):
        return
    skip = pytest.mark.skip(reason=f"PostgreSQL only: set {PG_ENV}")
    for item in items:
        if item.get_closest_marker("postgres_only"):
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def _skips_fail_this_run() -> bool:
    return bool(_skipped and os.environ.get("CI") and os.environ.get(PG_ENV))


def _contract_problems() -> list[str]:
    return sorted({problem for ledger in _ledgers for problem in ledger.problems})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI the PostgreSQL leg must run every test: a skip there is a failure. And every
    answer a test received must be described by the contract (tests/contract/ledger.py)."""
    if _skips_fail_this_run() or _contract_problems():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    problems = _contract_problems()
    if problems:
        terminalreporter.write_sep(
            "!", f"{len(problems)} answer(s) the contract does not describe", red=True
        )
        for problem in problems:
            terminalreporter.write_line(problem)
    if _skips_fail_this_run():
        terminalreporter.write_sep(
            "!",
            f"CI: {len(_skipped)} test(s) skipped on the PostgreSQL leg: {_skipped[:5]}",
            red=True,
        )


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = os.environ.get(PG_ENV)
    if not server:
        path = tmp_path_factory.mktemp("db") / "allyapi.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"allyapi_test_{uuid.uuid4().hex[:12]}"
    admin = _asyncpg_dsn(server)

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def settings(migrated_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        env="test",
        data_dir=Path(tmp_path_factory.mktemp("data")),
        database_url=migrated_url,
        jwt_secret=secrets.token_urlsafe(48),
        pseudonym_key=secrets.token_urlsafe(48),
        data_keys="k2:"
        + base64.b64encode(secrets.token_bytes(32)).decode()
        + ",k1:"
        + base64.b64encode(secrets.token_bytes(32)).decode(),
        docs_enabled=True,
    )


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings, database: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, database)


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "database" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("database")
    tables = [table.name for table in reversed(metadata.sorted_tables)]
    # DELETE, child tables first: on tables this small it is far cheaper than TRUNCATE,
    # which rewrites every table's files on PostgreSQL.
    async with database.engine.begin() as connection:
        for table in tables:
            await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - our table names
    # What this process remembers about those rows (read counts) goes with them.
    database.read_counter.windows.clear()
    SWEPT_WINDOWS.clear()


@pytest.fixture(scope="session")
def ledger(app) -> Ledger:  # type: ignore[no-untyped-def]
    recorded = Ledger(app.openapi())
    _ledgers.append(recorded)
    return recorded


@pytest.fixture
async def client(app, ledger: Ledger) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        event_hooks={"response": [ledger.record]},
    ) as http:
        yield http


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session for factories and for looking at stored rows; commits are the test's job.

    Bound to the plain engine: on SQLite a test holding it open while the app writes must not
    hold the write lock the way request sessions do (see core/db/session.py)."""
    async with make_sessionmaker(database.engine)() as db_session:
        yield db_session


@pytest.fixture(scope="session")
def tokens(settings: Settings) -> TokenFactory:
    return TokenFactory(settings)


@pytest.fixture
def arrive(database: Database) -> Callable[[], Awaitable[int]]:
    """Run the background arrival pass now: contributions reach the aggregates through it
    (aggregates/arrivals.py), so a test calls this between writing and reading figures."""

    async def run() -> int:
        return sum((await arrive_all(database)).values())

    return run
