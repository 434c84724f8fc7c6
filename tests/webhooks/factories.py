"""Webhook test helpers: subscribe through the API, read deliveries from the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.webhooks.models import EVENT_TYPES, PER_REQUEST_EVENTS, WebhookDelivery

# What a coordinator may subscribe to: everything but the per-request events.
PROGRAMME_EVENTS = tuple(event for event in EVENT_TYPES if event not in PER_REQUEST_EVENTS)


async def subscribe(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    url: str = "https://hooks.example.test/allyapi",
    events: Sequence[str] = EVENT_TYPES,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks", json={"url": url, "events": list(events)}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(session: AsyncSession) -> list[WebhookDelivery]:
    rows = await session.scalars(
        sa.select(WebhookDelivery)
        .order_by(col(WebhookDelivery.created_at), col(WebhookDelivery.id))
        .execution_options(populate_existing=True)
    )
    return list(rows)
