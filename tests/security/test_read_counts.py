"""Reads are counted in process and flushed to the shared row in batches (core/http/readcount.py).

One process: the limit is exact (tests/security/test_rate_limit_clock_and_reads.py). Here:
the row ends up holding every read, and two processes together stay within the documented
bound.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.session import Database
from allyapi.core.http.readcount import FLUSH_SECONDS
from allyapi.core.settings import Settings
from tests.helpers import TokenFactory
from tests.security.test_rate_limits import limited_app, open_client

LIMIT = 6


async def counted(session: AsyncSession) -> int:
    await session.rollback()
    found = await session.scalar(
        text("SELECT coalesce(sum(count), 0) FROM rate_limit_buckets WHERE policy = 'reads'")
    )
    return int(found or 0)


async def test_every_read_reaches_the_shared_count(
    settings: Settings, database: Database, session: AsyncSession, tokens: TokenFactory
) -> None:
    async for http in open_client(limited_app(settings, database, reads=1000)):
        for _ in range(25):
            assert (await http.get("/v1/resources", headers=tokens.employee)).status_code == 200
    for _ in range(50):
        if await counted(session) == 25:
            return
        await asyncio.sleep(FLUSH_SECONDS)
    raise AssertionError(f"the row holds {await counted(session)} reads, not 25")


async def test_two_processes_stay_within_the_bound(
    settings: Settings, database: Database, session: AsyncSession, tokens: TokenFactory
) -> None:
    """Reads alternating between two processes, far faster than a flush: at most the limit
    plus what the second process answers before it learns the first one's count."""
    replica = Database(settings)
    try:
        statuses: list[int] = []
        async for first in open_client(limited_app(settings, database, reads=LIMIT)):
            async for second in open_client(limited_app(settings, replica, reads=LIMIT)):
                clients: tuple[httpx.AsyncClient, ...] = (first, second)
                for n in range(8 * LIMIT):
                    response = await clients[n % 2].get("/v1/resources", headers=tokens.employee)
                    statuses.append(response.status_code)
        assert set(statuses) <= {200, 429}
        assert LIMIT <= statuses.count(200) <= 2 * LIMIT, statuses
    finally:
        await replica.dispose()
