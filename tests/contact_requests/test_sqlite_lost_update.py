"""A concurrent accept and cancel of one request: the outcome is a serial one, counters true.

On SQLite this failed before request sessions began with ``BEGIN IMMEDIATE`` (the read ``FOR
UPDATE`` is ignored there and the driver ran the SELECT outside any transaction, so both
transitions read ``pending`` and both answered 200). On PostgreSQL the row lock holds it.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest, RequesterLoad
from allyapi.core.settings import Settings
from tests.factories import make_ally
from tests.helpers import TokenFactory

ROUNDS = 12


async def test_accept_and_cancel_racing_leave_one_outcome_and_true_counters(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> None:
    for round_ in range(ROUNDS):
        ally = await make_ally(session, settings, sub=f"racing-ally-{round_}", capacity=3)
        requester = tokens.headers(f"racing-requester-{round_}", "employee")
        created = await client.post(
            "/v1/contact-requests",
            headers=requester,
            json={"ally_id": str(ally.id), "topic": "stress", "message": "hello"},
        )
        assert created.status_code == 201, created.text
        request_id = uuid.UUID(created.json()["id"])
        path = f"/v1/contact-requests/{request_id}"

        accepted, cancelled = await asyncio.gather(
            client.post(
                f"{path}/accept", headers=tokens.headers(f"racing-ally-{round_}", "employee")
            ),
            client.post(f"{path}/cancel", headers=requester),
        )

        await session.rollback()
        row = await session.get(ContactRequest, request_id, populate_existing=True)
        assert row is not None
        # Serial outcomes only: accept then cancel (both 200, cancelled), or cancel then a
        # refused accept (409, cancelled). Never "accepted" after a successful cancel.
        assert cancelled.status_code == 200, cancelled.text
        assert accepted.status_code in (200, 409), accepted.text
        assert row.status == "cancelled"
        stored_ally = await session.get(Ally, ally.id, populate_existing=True)
        assert stored_ally is not None
        assert stored_ally.open_requests == 0
        load = await session.get(
            RequesterLoad, (row.org_id, row.requester_ref), populate_existing=True
        )
        assert load is None  # nothing open: the per-person row is gone, not kept at zero
