"""contact_request.expired comes from the expiry job and carries ids only: no requester_ref,
no message, no sub, no name, no contact detail (docs/privacy.md, P1). (contact_request.assigned is
tested with the request flow in tests/contact_requests/test_webhooks.py.)"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import ContactRequest
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.contact_requests import run_all_jobs
from tests.allies.factories import active_ally
from tests.helpers import TokenFactory
from tests.webhooks.factories import deliveries, subscribe

SUB = "requester-sub-7f3a"
NAME = "Robin Requester"
MESSAGE = "a message only the ally may read 91c2"
CONTACT = "robin@example.test"


async def test_expiry_is_announced_without_requester_data(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
) -> None:
    await subscribe(client, tokens.integration, events=["contact_request.expired"])
    ally = await active_ally(client, tokens, "ally-a", topics=["stress"])
    body = {
        "ally_id": ally["id"],
        "topic": "stress",
        "message": MESSAGE,
        "alias": "Robin",
        "contact_detail": CONTACT,
        "preferred_channel": "email",
    }
    requester = tokens.headers(SUB, "employee", name=NAME)
    created = await client.post("/v1/contact-requests", json=body, headers=requester)
    assert created.status_code == 201, created.text
    assert await deliveries(session) == []  # not expired yet

    counts = await run_all_jobs(database, settings, now=utcnow() + timedelta(days=30))
    assert counts.expired == 1
    [row] = await deliveries(session)
    payload = json.loads(row.body)
    assert payload["type"] == "contact_request.expired"
    assert payload["data"] == {"contact_request_id": created.json()["id"], "ally_id": ally["id"]}
    requester_ref = (await session.scalars(sa.select(col(ContactRequest.requester_ref)))).one()
    for secret in (SUB, NAME, MESSAGE, CONTACT, "Robin", requester_ref):
        assert secret not in row.body

    again = await run_all_jobs(database, settings, now=utcnow() + timedelta(days=31))
    assert again.expired == 0
    assert len(await deliveries(session)) == 1  # expired once, announced once
