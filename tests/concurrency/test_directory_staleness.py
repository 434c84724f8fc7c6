"""A directory change shows in every server process within a second (PostgreSQL).

Each process caches directory pages (core/db/directory_cache.py); the other process learns of
a change through the database's notification. Measured from the writer's 2xx to the first
read on the other process that shows it.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.session import Database
from tests.allies.factories import active_ally, employee
from tests.concurrency.conftest import Server
from tests.helpers import TokenFactory

VISIBLE_WITHIN = 1.0


async def names(http: httpx.AsyncClient, server: Server, headers: dict[str, str]) -> list[str]:
    response = await http.get(f"{server.base_url}/v1/allies", headers=headers)
    assert response.status_code == 200, response.text
    return [item["display_name"] for item in response.json()["items"]]


async def seconds_until(
    http: httpx.AsyncClient, server: Server, headers: dict[str, str], wanted: list[str]
) -> float:
    started = time.monotonic()
    while await names(http, server, headers) != wanted:
        assert time.monotonic() - started < 5, "never became visible"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def warm(http: httpx.AsyncClient, servers: list[Server], headers: dict[str, str]) -> None:
    """Both processes have the page cached (their listeners connect on the first read)."""
    for server in servers:
        await names(http, server, headers)
    await asyncio.sleep(0.5)
    for server in servers:
        for _ in range(3):
            await names(http, server, headers)


async def test_a_change_on_one_process_shows_on_the_other_within_a_second(
    two_servers: list[Server], http: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    writer, reader = two_servers
    async with httpx.AsyncClient(base_url=writer.base_url, timeout=30) as api:
        ally = await active_ally(api, tokens, "alex", display_name="Alex")
    await warm(http, two_servers, tokens.employee)
    assert await names(http, reader, tokens.employee) == ["Alex"]

    changed = await http.patch(
        f"{writer.base_url}/v1/me/ally-profile",
        json={"display_name": "Alexa"},
        headers=employee(tokens, "alex"),
    )
    assert changed.status_code == 200, changed.text
    assert await names(http, writer, tokens.employee) == ["Alexa"]  # its own write: at once
    waited = await seconds_until(http, reader, tokens.employee, ["Alexa"])
    print(f"\ndirectory change visible on the other process after {waited * 1000:.0f} ms")
    assert waited < VISIBLE_WITHIN

    paused = await http.post(
        f"{reader.base_url}/v1/allies/{ally['id']}/pause", headers=tokens.coordinator
    )
    assert paused.status_code == 200, paused.text
    assert await seconds_until(http, writer, tokens.employee, []) < VISIBLE_WITHIN


async def test_a_write_by_any_other_client_of_the_database_shows_within_a_second(
    two_servers: list[Server], http: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    """The triggers notify whatever code wrote the row (a job, a migration, psql)."""
    async with httpx.AsyncClient(base_url=two_servers[0].base_url, timeout=30) as api:
        await active_ally(api, tokens, "alex", display_name="Alex")
    await warm(http, two_servers, tokens.employee)
    await session.execute(text("UPDATE allies SET display_name = 'Alexis'"))
    await session.commit()
    waits = await asyncio.gather(
        *(seconds_until(http, s, tokens.employee, ["Alexis"]) for s in two_servers)
    )
    print(f"\nan outside write visible on both processes after {max(waits) * 1000:.0f} ms")
    assert max(waits) < VISIBLE_WITHIN, waits
