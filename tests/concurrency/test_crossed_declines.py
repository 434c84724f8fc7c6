"""Re-matching waits for an ally's row instead of passing over it, and still never deadlocks
(PostgreSQL).

A re-match (decline or hand-back) holds the request and claims another ally. It used to skip a
candidate whose row another transaction held (``SKIP LOCKED``), which kept two allies
declining towards each other from deadlocking but told people "declined" while an ally had
room. Now each round locks the candidates and the ally giving the request back in id order and
waits for them (``Matcher.claim_for_rematch``): one lock order, so no cycle between re-matches.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.contact_requests.matching import Matcher, Wanted
from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.contact_requests.factories import create, load_of, make_ally, person
from tests.helpers import ORG, TokenFactory

pytestmark = pytest.mark.postgres_only

BOUND_SECONDS = 30  # a safety net for the test run, never a measurement


async def hold_rows(session: AsyncSession, *ally_ids: uuid.UUID) -> None:
    """What a create or cancel does to an ally's row: an UPDATE that holds it until commit."""
    await session.execute(
        sa.update(Ally)
        .where(col(Ally.id).in_(ally_ids))
        .values(open_requests=col(Ally.open_requests))
    )


async def waiting_backends(session: AsyncSession, at_least: int) -> None:
    """Return once ``at_least`` other backends of this database wait for a row lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(BOUND_SECONDS):
        while int((await session.execute(query)).scalar_one()) < at_least:
            await session.rollback()  # statistics views answer from one snapshot per transaction
            await asyncio.sleep(0.01)
        await session.rollback()


async def rematch(
    database: Database, giving_back: uuid.UUID, exclude: set[uuid.UUID]
) -> uuid.UUID | None:
    async with database.sessionmaker() as session:
        ally = await Matcher(session).claim_for_rematch(
            ORG, today(), Wanted("stress", None, exclude=exclude), giving_back=giving_back
        )
        await session.commit()
        return None if ally is None else ally.id


async def test_a_rematch_waits_for_a_busy_ally_instead_of_passing_over_them(
    database: Database, session: AsyncSession, settings: Settings
) -> None:
    a = (await make_ally(session, settings, "ally-a", open_requests=1)).id
    b = (await make_ally(session, settings, "ally-b")).id
    async with database.sessionmaker() as holder:
        await hold_rows(holder, b)
        claim = asyncio.create_task(rematch(database, a, {a}))
        await waiting_backends(session, 1)  # the re-match waits for B's row...
        await holder.commit()
    assert await asyncio.wait_for(claim, BOUND_SECONDS) == b  # ...and takes B
    assert await load_of(session, b) == 1


async def test_crossed_rematches_wait_for_each_other_and_both_succeed(
    database: Database, session: AsyncSession, settings: Settings
) -> None:
    """A hands a request towards B while B hands one towards A, both queued behind a third
    transaction holding both rows: the classic lock cycle, which one lock order rules out."""
    a = (await make_ally(session, settings, "ally-a", open_requests=1)).id
    b = (await make_ally(session, settings, "ally-b", open_requests=1)).id
    async with database.sessionmaker() as holder:
        await hold_rows(holder, a, b)
        claims = asyncio.gather(rematch(database, a, {a}), rematch(database, b, {b}))
        await waiting_backends(session, 2)
        await holder.commit()
    assert await asyncio.wait_for(claims, BOUND_SECONDS) == [b, a]
    assert (await load_of(session, a), await load_of(session, b)) == (2, 2)


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
