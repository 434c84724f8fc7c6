"""The periodic listing check and writes racing on one flip announce it once (PostgreSQL).

Each round flips an ally's *listed* state behind everyone's back (its required record's expiry
moved by a direct UPDATE, as the calendar would), then fires at once: two periodic checks on
their own engine (as two server processes would run them) and two API writes that re-check the
ally (a profile edit by the ally, a harmless one). All four see the flip; exactly one event
must come out of it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.announcements import announce_due
from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.training.models import TrainingRecord
from tests.allies.factories import active_ally, employee, required_course, training_record
from tests.helpers import TokenFactory
from tests.webhooks.factories import deliveries, subscribe

ROUNDS = 12

pytestmark = pytest.mark.postgres_only


async def test_a_flip_is_announced_once_by_whoever_sees_it_first(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
) -> None:
    ally = await active_ally(client, tokens, "racer")
    course = await required_course(session)
    await training_record(session, ally["id"], course, expires_on=today() + timedelta(days=90))
    await subscribe(client, tokens.integration, events=["ally.listed", "ally.unlisted"])
    other_process = Database(settings)  # its own engine and pool, as another process has
    own = employee(tokens, "racer")
    try:
        assert await announce_due(database) == 0  # listed, and announced as such
        for round_no in range(ROUNDS):
            expiry = today() - timedelta(days=1) if round_no % 2 == 0 else today() + timedelta(90)
            async with database.sessionmaker() as db, db.begin():
                await db.execute(sa.update(TrainingRecord).values(expires_on=expiry))

            async def edit(bio: str) -> None:
                response = await client.patch("/v1/me/ally-profile", json={"bio": bio}, headers=own)
                assert response.status_code == 200, response.text

            await asyncio.gather(
                announce_due(database),
                announce_due(other_process),
                edit(f"round {round_no}a"),
                edit(f"round {round_no}b"),
            )
            kinds = [row.event_type for row in await deliveries(session)]
            assert len(kinds) == round_no + 1, kinds
        ids = {json.loads(row.body)["data"]["ally_id"] for row in await deliveries(session)}
        assert ids == {ally["id"]}
        expected = ["ally.unlisted", "ally.listed"] * (ROUNDS // 2)
        assert [row.event_type for row in await deliveries(session)] == expected
    finally:
        await other_process.dispose()
