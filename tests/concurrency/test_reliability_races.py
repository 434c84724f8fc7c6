"""The races of many clients at once, on two server processes (the fixture in conftest.py).

test_contact_request_races.py covers one ally and one requester; these push the same
invariants wider and add feedback: 200 creates with one ``Idempotency-Key``; capacity and the
requester cap with many allies and many requesters racing at once; one feedback per request.
``ALLYAPI_RELIABILITY_FULL=1`` multiplies the counts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.settings import Settings
from tests.concurrency.conftest import Server
from tests.factories import make_ally
from tests.helpers import TokenFactory
from tests.reliability.harness import counts

pytestmark = pytest.mark.postgres_only

Call = tuple[str, dict[str, str], dict[str, Any]]  # path, headers, JSON body


RETRIES = 5  # a 503 (pool exhausted under an overload) is retried as a client would


async def fire(
    http: httpx.AsyncClient, servers: list[Server], calls: list[Call]
) -> list[httpx.Response]:
    """Every POST released at once, alternating between the processes; bounded in time.

    At the default counts nothing is retried in practice. With ``ALLYAPI_RELIABILITY_FULL``
    hundreds of requests outrun the servers' connection pools, and the overflow is answered
    503 with ``Retry-After`` (load shed, nothing stored): those are retried after the pause,
    like a well-behaved client, so the invariants are checked on final answers.
    """
    start = asyncio.Event()

    async def one(
        n: int, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> httpx.Response:
        await start.wait()
        url = f"{servers[n % len(servers)].base_url}{path}"
        for attempt in range(1, RETRIES + 1):
            try:
                response = await http.post(url, json=body, headers=headers)
            except httpx.PoolTimeout:  # our own client's queue, not the server
                if attempt == RETRIES:
                    raise
                continue
            if response.status_code != 503:
                return response
            await asyncio.sleep(float(response.headers["Retry-After"]))
        return response

    tasks = [asyncio.create_task(one(n, *call)) for n, call in enumerate(calls)]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)


def create(ally: Ally, n: int = 0) -> dict[str, Any]:
    return {"ally_id": str(ally.id), "topic": "stress", "message": f"race {n}"}


async def open_rows(session: AsyncSession, ally: Ally) -> int:
    query = sa.select(sa.func.count()).where(
        col(ContactRequest.ally_id) == ally.id,
        col(ContactRequest.status).in_(["pending", "accepted"]),
    )
    return int((await session.execute(query)).scalar_one())


async def test_200_simultaneous_creates_with_one_idempotency_key_make_one_row(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    n = counts(200, 600)
    ally = await make_ally(session, settings, capacity=3)
    headers = {**tokens.headers("double-clicker", "employee"), "Idempotency-Key": str(uuid.uuid4())}

    responses = await fire(http, two_servers, [("/v1/contact-requests", headers, create(ally))] * n)

    assert Counter(r.status_code for r in responses) == {201: n}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await open_rows(session, ally) == 1
    refreshed = await session.get(Ally, ally.id, populate_existing=True)
    assert refreshed is not None
    assert refreshed.open_requests == 1


async def test_capacity_holds_for_every_ally_when_many_race_for_several(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    n, capacity = counts(50, 300), 3
    allies = [await make_ally(session, settings, capacity=capacity) for _ in range(3)]
    calls = [
        ("/v1/contact-requests", tokens.headers(f"crowd-{i}", "employee"), create(allies[i % 3], i))
        for i in range(n)
    ]

    responses = await fire(http, two_servers, calls)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3 * capacity, 409: n - 3 * capacity}, statuses
    for ally in allies:
        assert await open_rows(session, ally) == capacity
        refreshed = await session.get(Ally, ally.id, populate_existing=True)
        assert refreshed is not None
        assert refreshed.open_requests == capacity


async def test_the_requester_cap_holds_for_many_requesters_at_once(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    requesters, each = counts(10, 40), 10
    allies = [
        await make_ally(session, settings, capacity=50) for _ in range(requesters // 10 * 2 + 1)
    ]
    calls = [
        (
            "/v1/contact-requests",
            tokens.headers(f"eager-{r}", "employee"),
            create(allies[(r * each + i) % len(allies)], i),
        )
        for i in range(each)
        for r in range(requesters)
    ]

    responses = await fire(http, two_servers, calls)

    cap = settings.max_open_requests
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: requesters * cap, 429: requesters * (each - cap)}, statuses
    total = await session.scalar(sa.select(sa.func.count(col(ContactRequest.id))))
    assert total == requesters * cap


async def _completed_request(
    http: httpx.AsyncClient,
    server: Server,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> tuple[str, dict[str, str]]:
    ally = await make_ally(session, settings, sub="feedback-ally")
    requester = tokens.headers("feedback-giver", "employee")
    ally_headers = tokens.headers("feedback-ally", "employee")
    base = f"{server.base_url}/v1/contact-requests"
    created = await http.post(base, json=create(ally), headers=requester)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    accepted = await http.post(f"{base}/{request_id}/accept", headers=ally_headers)
    assert accepted.status_code == 200, accepted.text
    debrief = {"signposted": False, "wellbeing": 4}
    completed = await http.post(f"{base}/{request_id}/complete", json=debrief, headers=ally_headers)
    assert completed.status_code == 200, completed.text
    return request_id, requester


async def test_20_simultaneous_feedbacks_on_one_request_store_one(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    n = counts(20, 200)
    request_id, requester = await _completed_request(
        http, two_servers[0], session, settings, tokens
    )
    feedback = {"rating": 5, "felt_heard": True, "would_recommend": True}
    path = f"/v1/contact-requests/{request_id}/feedback"

    responses = await fire(http, two_servers, [(path, requester, feedback)] * n)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: n - 1}, statuses
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith("application/problem+json")
    stored = await session.scalar(
        sa.text("SELECT count(*) FROM request_feedback WHERE request_id = :id"),
        {"id": uuid.UUID(request_id)},
    )
    assert stored == 1
