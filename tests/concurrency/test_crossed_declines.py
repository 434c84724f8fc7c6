"""Two allies declining towards each other at the same moment must not deadlock (PostgreSQL).

A decline releases the declining ally's slot (holding that ally's row until commit) and then
claims the best other ally. Ally A declining towards B while B declines towards A used to be
the textbook lock cycle: each transaction held one ally's row and waited for the other's,
until PostgreSQL aborted one (a 500 then; now such an abort would be a 503, core/dbfaults.py).
Re-matching now skips a candidate whose row is held (``claim_ally_slot(skip_locked=True)``).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.core.database import Database
from allyapi.core.models import today
from allyapi.core.settings import Settings
from tests.contact_requests.factories import create, load_of, make_ally, person
from tests.helpers import ORG, TokenFactory

pytestmark = pytest.mark.postgres_only


async def test_crossed_claims_skip_a_held_ally_instead_of_waiting(
    database: Database, session: AsyncSession, settings: Settings
) -> None:
    a = await make_ally(session, settings, "ally-a", open_requests=1)
    b = await make_ally(session, settings, "ally-b", open_requests=1)
    async with database.sessionmaker() as first, database.sessionmaker() as second:
        one, two = ContactRequestRepository(first), ContactRequestRepository(second)
        await one.release_ally_slot(ORG, a.id)  # each now holds its own ally's row
        await two.release_ally_slot(ORG, b.id)
        claims = asyncio.gather(
            one.claim_ally_slot(ORG, b.id, today(), skip_locked=True),
            two.claim_ally_slot(ORG, a.id, today(), skip_locked=True),
        )
        # Waiting claims would block here until PostgreSQL's deadlock detector fired (1 s).
        assert await asyncio.wait_for(claims, timeout=0.5) == [None, None]
        await first.commit()
        await second.commit()
    assert (await load_of(session, a.id), await load_of(session, b.id)) == (0, 0)


async def test_crossed_declines_through_the_api_both_succeed(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    """End to end, with a third ally to go to. The interleaving is not forced here (the test
    above forces it); this one proves the path answers 204 under concurrency."""
    a = await make_ally(session, settings, "ally-a", capacity=5)
    b = await make_ally(session, settings, "ally-b", capacity=5)
    await make_ally(session, settings, "ally-c", capacity=5)
    for _ in range(10):
        to_a = await create(client, person(tokens, "emp-1"), ally_id=str(a.id))
        to_b = await create(client, person(tokens, "emp-2"), ally_id=str(b.id))
        declines = await asyncio.gather(
            client.post(
                f"/v1/contact-requests/{to_a['id']}/decline",
                json={"reason": "at_capacity"},
                headers=person(tokens, "ally-a"),
            ),
            client.post(
                f"/v1/contact-requests/{to_b['id']}/decline",
                json={"reason": "at_capacity"},
                headers=person(tokens, "ally-b"),
            ),
        )
        assert [d.status_code for d in declines] == [204, 204], [d.text for d in declines]
        for request, headers in ((to_a, person(tokens, "emp-1")), (to_b, person(tokens, "emp-2"))):
            await client.post(f"/v1/contact-requests/{request['id']}/cancel", headers=headers)
