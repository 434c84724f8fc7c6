"""An employee polling the suggestions cannot time another person's request to a chosen ally.

The attack: poll ``GET /v1/allies/suggestions`` as fast as allowed while requests are made to
a chosen ally, and flag every poll whose list differs from the one before: with a ranking by
live load, each request moved the ally down past one colleague (and the last one made them
vanish, full), so every request was flagged, to within one poll interval. The suggestions now
rank by a load band snapshot taken once per period: the list changes at the snapshot only,
wherever the requests fell in between, and a full ally stays listed until then.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
import uuid
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.ranking import database_time, refresh_rank_bands
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.contact_requests.factories import BODY, make_ally
from tests.helpers import TokenFactory

REQUESTS = 10
POLLS = 60
REFRESH_AT = 55  # the next period's snapshot, after the last request
CAPACITY = REQUESTS  # the chosen ally is full after the last request


async def poll(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get("/v1/allies/suggestions?topic=stress&limit=20", headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


async def test_polling_the_suggestions_detects_no_request(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    database: Database,
) -> None:
    # The chosen ally has the lightest load; each colleague one more, so that under a ranking
    # by live load every request to the chosen one passes a colleague.
    chosen = await make_ally(session, settings, "chosen", name="Zed", capacity=CAPACITY)
    for load in range(1, CAPACITY):
        await make_ally(session, settings, f"o{load}", name=f"O{load}", capacity=CAPACITY, open_requests=load)  # fmt: skip
    await refresh_rank_bands(database, settings)
    attacker = tokens.headers("attacker", "employee")
    requests_before = set(random.Random(20261127).sample(range(1, REFRESH_AT), REQUESTS))

    lists, stamps = [await poll(client, attacker)], [time.perf_counter()]
    for index in range(1, POLLS):
        if index in requests_before:  # a colleague asks the chosen ally for help
            victim = tokens.headers(f"victim-{uuid.uuid4().hex[:6]}", "employee")
            created = await client.post(
                "/v1/contact-requests", json={**BODY, "ally_id": str(chosen.id)}, headers=victim
            )
            assert created.status_code == 201, created.text
        if index == REFRESH_AT:  # the background job, once the next period has begun
            later = await database_time(database) + timedelta(
                minutes=settings.suggestion_refresh_minutes
            )
            await refresh_rank_bands(database, settings, at=later)
        lists.append(await poll(client, attacker))
        stamps.append(time.perf_counter())

    changed = {index for index in range(1, POLLS) if lists[index] != lists[index - 1]}
    detected = changed & requests_before
    interval_ms = statistics.median(b - a for a, b in itertools.pairwise(stamps)) * 1000
    print(  # the figures SECURITY.md quotes (pytest -s)
        f"\nsuggestions polling: {len(detected)} of {REQUESTS} requests detected; "
        f"list changed at polls {sorted(changed)}; poll interval {interval_ms:.1f} ms"
    )
    assert detected == set()
    # Full since the last request, yet listed until the snapshot: no vanishing at the instant.
    assert str(chosen.id) in lists[REFRESH_AT - 1]
    assert str(chosen.id) not in lists[REFRESH_AT]
    assert changed == {REFRESH_AT}
