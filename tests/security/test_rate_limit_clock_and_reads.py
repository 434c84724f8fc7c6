"""Rate limits hold across replicas whose clocks disagree, and reads are limited too.

A replica whose clock ran 180 s ahead counted into its own future window and swept every
current window of the others as "old": a caller alternating between replicas got 501 writes
accepted under a limit of 20 per minute. Windows now come from the database's clock.

Reads are limited per caller (``reads`` policy): polling the suggestions every 60 ms was how a
person's request to a chosen ally was timed, and the directory can be scraped.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.concurrency.conftest import Server, free_port
from tests.factories import process_env
from tests.helpers import TokenFactory, assert_problem
from tests.reliability.harness import stop_server, wait_healthy
from tests.security.test_rate_limits import limited_app, open_client

LIMIT = 4
AHEAD_SECONDS = 180
TRIES = 3  # a run that straddles a minute boundary of the database's clock is run again


@pytest.fixture
async def read_limited(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async for http in open_client(limited_app(settings, database, limit=100, reads=LIMIT)):
        yield http


@pytest.mark.parametrize("path", ["/v1/allies/suggestions", "/v1/allies", "/v1/resources"])
async def test_reads_over_the_limit_answer_429_with_headers(
    read_limited: httpx.AsyncClient, tokens: TokenFactory, path: str
) -> None:
    for left in reversed(range(LIMIT)):
        response = await read_limited.get(path, headers=tokens.employee)
        assert response.status_code == 200, response.text
        assert response.headers["ratelimit"].startswith(f'"reads";r={left};t=')
        assert response.headers["ratelimit-policy"] == f'"reads";q={LIMIT};w=60'
    refused = await read_limited.get(path, headers=tokens.employee)
    body = assert_problem(refused, 429)
    assert body["detail"].startswith(f"at most {LIMIT} reads per minute")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit"].startswith('"reads";r=0;')
    # Another caller reads on; the same caller may still write.
    assert (await read_limited.get(path, headers=tokens.headers("emp-2", "employee"))).is_success
    created = await read_limited.post(
        "/v1/feedback", json={"category": "other", "rating": 3}, headers=tokens.employee
    )
    assert created.status_code == 201, created.text


async def windows_used(session: AsyncSession) -> int:
    await session.rollback()
    found = await session.scalar(
        text("SELECT count(DISTINCT window_start) FROM rate_limit_buckets")
    )
    return int(found or 0)


async def accepted_within_one_window(
    write: Callable[[int], Awaitable[int]], session: AsyncSession, attempts: int
) -> int:
    """Writes accepted out of ``attempts`` (alternating replicas), all in one window of the
    database's clock; a run that crossed a minute boundary is repeated."""
    for _ in range(TRIES):
        await session.execute(text("DELETE FROM rate_limit_buckets"))
        await session.commit()
        statuses = [await write(n) for n in range(attempts)]
        if await windows_used(session) == 1:
            assert set(statuses) <= {404, 429}, statuses
            return statuses.count(404)
    raise AssertionError(f"the writes never fell within one database window in {TRIES} runs")


async def test_a_replica_whose_clock_runs_ahead_cannot_reset_the_limit(
    settings: Settings,
    database: Database,
    session: AsyncSession,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two app instances with their own engines (two replicas); every request to the second
    runs with this process's clock 180 s ahead, as that replica's would be."""
    real_time = time.time
    ahead = {"on": False}
    monkeypatch.setattr(time, "time", lambda: real_time() + (AHEAD_SECONDS if ahead["on"] else 0))
    replica_database = Database(settings)
    try:
        async for first in open_client(limited_app(settings, database, limit=LIMIT)):
            async for second in open_client(limited_app(settings, replica_database, limit=LIMIT)):
                write = partial(write_alternately, (first, second), ahead, tokens.coordinator)
                assert await accepted_within_one_window(write, session, 4 * LIMIT) == LIMIT
    finally:
        await replica_database.dispose()


async def write_alternately(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
    ahead: dict[str, bool],
    headers: dict[str, str],
    n: int,
) -> int:
    """Even attempts to the first replica, odd ones to the second with its clock ahead."""
    ahead["on"] = n % 2 == 1
    try:
        url = f"/v1/resources/{uuid.uuid4()}"
        return (await replicas[n % 2].delete(url, headers=headers)).status_code
    finally:
        ahead["on"] = False


SHIFTED_SERVE = (
    "import sys, time\n"
    "real = time.time\n"
    f"time.time = lambda: real() + {AHEAD_SECONDS}\n"
    "from allyapi.cli import main\n"
    "main(sys.argv[1:])\n"
)


async def start(settings: Settings, folder: Path, name: str, *, shifted: bool) -> Server:
    port = free_port()
    log = folder / f"{name}.log"
    launcher = ["-c", SHIFTED_SERVE] if shifted else ["-m", "allyapi"]
    env = process_env(settings, ALLYAPI_RATE_LIMIT_WRITES_PER_MINUTE=str(LIMIT))
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *launcher,
            *("serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port)),
            env=env,
            cwd=folder,
            stdout=sink,
            stderr=sink,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    await wait_healthy(server)
    return server


@pytest.mark.postgres_only
async def test_two_server_processes_one_clock_ahead_share_one_limit(
    settings: Settings, session: AsyncSession, tokens: TokenFactory, tmp_path: Path
) -> None:
    """The same over real ``allyapi serve`` processes on PostgreSQL, the second one started
    with its process clock 180 s ahead."""
    servers = [
        await start(settings, tmp_path, "on-time", shifted=False),
        await start(settings, tmp_path, "ahead", shifted=True),
    ]
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            async def write(n: int) -> int:
                url = f"{servers[n % 2].base_url}/v1/resources/{uuid.uuid4()}"
                return (await http.delete(url, headers=tokens.coordinator)).status_code

            assert await accepted_within_one_window(write, session, 4 * LIMIT) == LIMIT
    finally:
        for server in servers:
            await stop_server(server)
