"""contact_request.assigned: written with the change, carrying the request and ally ids only."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.settings import Settings
from allyapi.webhooks.models import WebhookDelivery
from tests.contact_requests.factories import ALIAS, CONTACT, MESSAGE, act, create, make_ally, person
from tests.helpers import TokenFactory


async def test_assignment_and_rematch_are_announced_without_personal_data(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    subscribed = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["contact_request.assigned"]},
        headers=tokens.integration,
    )
    assert subscribed.status_code == 201, subscribed.text
    first = await make_ally(session, settings, "robin", name="A")
    second = await make_ally(session, settings, "sasha", name="B")
    created = await create(
        client, tokens.employee, ally_id=str(first.id), contact_detail=CONTACT, alias=ALIAS
    )
    await act(client, created["id"], "decline", person(tokens, "robin"), {"reason": "other"})

    rows = (await session.execute(select(WebhookDelivery))).scalars().all()
    bodies = sorted((json.loads(row.body) for row in rows), key=lambda b: b["created_at"])
    assert [b["type"] for b in bodies] == ["contact_request.assigned"] * 2
    assert [b["data"] for b in bodies] == [
        {"contact_request_id": created["id"], "ally_id": str(first.id)},
        {"contact_request_id": created["id"], "ally_id": str(second.id)},
    ]
    for row in rows:
        for secret in (MESSAGE, CONTACT, ALIAS, "emp-1"):
            assert secret not in row.body
