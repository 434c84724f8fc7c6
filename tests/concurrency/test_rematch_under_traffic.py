"""Re-matching never passes over an ally with room because another transaction holds their row.

Ally A gives requests back (declines them one by one, or is paused by a coordinator) while four
clients keep creating and cancelling requests to ally B, who has plenty of room (capacity 50,
never more than 4 of those open). Every create, cancel and complete holds B's row for a moment.
Re-matching that skipped a held row ended most of A's requests ``declined`` with no ally; now a
request ends ``declined`` only when no listed ally with room remains, so every one of them must
end pending with B. Two server processes on PostgreSQL (SQLite serialises every writer, so a
held row cannot be met there).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.settings import Settings
from tests.concurrency.conftest import Server
from tests.contact_requests.factories import make_ally
from tests.helpers import TokenFactory

pytestmark = pytest.mark.postgres_only

TRAFFIC_CLIENTS = 4


def employee(tokens: TokenFactory, sub: str) -> dict[str, str]:
    return tokens.headers(sub, "employee")


async def requests_to(
    http: httpx.AsyncClient, servers: list[Server], tokens: TokenFactory, ally: Ally, n: int
) -> list[str]:
    """``n`` pending requests for ``ally``, from as many requesters as the cap needs."""
    ids = []
    for i in range(n):
        url = f"{servers[i % 2].base_url}/v1/contact-requests"
        body = {"ally_id": str(ally.id), "topic": "stress", "message": f"waiting {i}"}
        created = await http.post(url, json=body, headers=employee(tokens, f"asker-{i // 3}"))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    return ids


async def churn(
    http: httpx.AsyncClient,
    server: Server,
    headers: dict[str, str],
    ally: Ally,
    stop: asyncio.Event,
) -> int:
    """Create a request to ``ally`` and cancel it, again and again: B's row is held often."""
    rounds = 0
    base = f"{server.base_url}/v1/contact-requests"
    while not stop.is_set():
        body = {"ally_id": str(ally.id), "topic": "stress", "message": "background"}
        created = await http.post(base, json=body, headers=headers)
        assert created.status_code == 201, created.text
        cancelled = await http.post(f"{base}/{created.json()['id']}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
        rounds += 1
    return rounds


@contextlib.asynccontextmanager
async def traffic_to(
    http: httpx.AsyncClient, servers: list[Server], tokens: TokenFactory, ally: Ally
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(
            churn(http, servers[n % 2], employee(tokens, f"background-{n}"), ally, stop)
        )
        for n in range(TRAFFIC_CLIENTS)
    ]
    await asyncio.sleep(0.2)  # the traffic is flowing before the first hand-back
    try:
        yield
    finally:
        stop.set()
        rounds = await asyncio.wait_for(asyncio.gather(*workers), timeout=60)
    assert sum(rounds) > 0


async def outcome(session: AsyncSession, ids: list[str]) -> Counter[tuple[str, object]]:
    await session.rollback()
    rows = await session.execute(
        sa.select(col(ContactRequest.status), col(ContactRequest.ally_id)).where(
            sa.cast(col(ContactRequest.id), sa.String).in_(ids)
        )
    )
    return Counter((status, ally_id) for status, ally_id in rows)


async def test_declines_under_traffic_all_go_to_the_ally_with_room(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    a = await make_ally(session, settings, "ally-a", capacity=50)
    b = await make_ally(session, settings, "ally-b", capacity=50)
    ids = await requests_to(http, two_servers, tokens, a, 15)

    async with traffic_to(http, two_servers, tokens, b):
        for request_id, server in zip(ids, itertools.cycle(two_servers), strict=False):
            declined = await http.post(
                f"{server.base_url}/v1/contact-requests/{request_id}/decline",
                json={"reason": "at_capacity"},
                headers=employee(tokens, "ally-a"),
            )
            assert declined.status_code == 204, declined.text

    assert await outcome(session, ids) == Counter({("pending", b.id): 15})


async def test_a_paused_allys_requests_under_traffic_all_go_to_the_ally_with_room(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    a = await make_ally(session, settings, "ally-a", capacity=50)
    b = await make_ally(session, settings, "ally-b", capacity=50)
    a_id, b_id = a.id, b.id
    ids = await requests_to(http, two_servers, tokens, a, 40)

    async with traffic_to(http, two_servers, tokens, b):
        paused = await http.post(
            f"{two_servers[1].base_url}/v1/allies/{a_id}/pause", headers=tokens.coordinator
        )
        assert paused.status_code == 200, paused.text

    assert await outcome(session, ids) == Counter({("pending", b_id): 40})
    loads = dict((await session.execute(sa.select(col(Ally.id), col(Ally.open_requests)))).all())
    assert loads == {a_id: 0, b_id: 40}
