"""Webhook SQL for the API routes. Every query is scoped to the caller's org
(docs/privacy.md, P8)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from allyapi.core.db.models import json_array_contains, table_of
from allyapi.core.db.upsert import dialect_insert
from allyapi.webhooks.models import (
    PER_REQUEST_EVENTS,
    WebhookDelivery,
    WebhookMarker,
    WebhookSubscription,
)

MARKERS = table_of(WebhookMarker)

# Built once: this lookup runs in every create's transaction.
_SUBSCRIBERS = sa.select(col(WebhookSubscription.id)).where(
    col(WebhookSubscription.org_id) == sa.bindparam("org_id", type_=sa.String()),
    json_array_contains(
        col(WebhookSubscription.events), sa.bindparam("event_type", type_=sa.String())
    ),
)
# Per-request events go to subscriptions owned by an integration client only, whatever their
# ``events`` say: a row written before that rule (or by hand) cannot reach programme staff.
_OWNED_SUBSCRIBERS = _SUBSCRIBERS.where(col(WebhookSubscription.owner_ref).is_not(None))


async def subscribers(
    session: AsyncSession, org_id: str, event_type: str, *, owned_only: bool
) -> list[uuid.UUID]:
    """The subscriptions of ``org_id`` to ``event_type`` (only integration-owned ones for a
    per-request event)."""
    lookup = _OWNED_SUBSCRIBERS if owned_only else _SUBSCRIBERS
    return list(await session.scalars(lookup, {"org_id": org_id, "event_type": event_type}))


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, org_id: str, webhook_id: uuid.UUID) -> WebhookSubscription | None:
        query = select(WebhookSubscription).where(
            WebhookSubscription.org_id == org_id, WebhookSubscription.id == webhook_id
        )
        return (await self.session.execute(query)).scalars().first()

    async def page(
        self, org_id: str, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[WebhookSubscription]:
        query = select(WebhookSubscription).where(WebhookSubscription.org_id == org_id)
        if after is not None:
            query = query.where(
                sa.tuple_(col(WebhookSubscription.created_at), col(WebhookSubscription.id)) > after
            )
        query = query.order_by(
            col(WebhookSubscription.created_at), col(WebhookSubscription.id)
        ).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def deliveries(
        self,
        org_id: str,
        webhook_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
        per_request: bool,
    ) -> Sequence[WebhookDelivery]:
        """Newest first: the log is read to see what just happened. ``per_request``: whether
        deliveries of per-request events are included (their owner's view)."""
        query = select(WebhookDelivery).where(
            WebhookDelivery.org_id == org_id, WebhookDelivery.subscription_id == webhook_id
        )
        if not per_request:
            query = query.where(col(WebhookDelivery.event_type).not_in(PER_REQUEST_EVENTS))
        if before is not None:
            query = query.where(
                sa.tuple_(col(WebhookDelivery.created_at), col(WebhookDelivery.id)) < before
            )
        query = query.order_by(
            col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc()
        ).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def delivery(
        self, org_id: str, webhook_id: uuid.UUID, delivery_id: uuid.UUID, *, per_request: bool
    ) -> WebhookDelivery | None:
        query = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.org_id == org_id,
                WebhookDelivery.subscription_id == webhook_id,
                WebhookDelivery.id == delivery_id,
            )
            .with_for_update()
        )
        if not per_request:
            query = query.where(col(WebhookDelivery.event_type).not_in(PER_REQUEST_EVENTS))
        return (await self.session.execute(query)).scalars().first()

    def add(self, row: WebhookSubscription) -> None:
        self.session.add(row)

    async def delete(self, row: WebhookSubscription) -> None:
        # Deliveries go with it (ON DELETE CASCADE): its log and anything not yet sent.
        await self.session.execute(
            sa.delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == row.id)
        )
        await self.session.delete(row)


async def mark_once(
    session: AsyncSession, org_id: str, event: str, subject_id: uuid.UUID, window: str
) -> bool:
    """Insert the (org, event, subject, window) marker; True only for the transaction that
    inserted it (ON CONFLICT DO NOTHING), so several processes announce a window once."""
    insert = dialect_insert(session.get_bind().dialect.name, MARKERS)
    result = await session.execute(
        insert.values(
            org_id=org_id, event_type=event, subject_id=subject_id, window=window
        ).on_conflict_do_nothing()
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_markers_before(session: AsyncSession, window: str) -> None:
    """Markers of windows long past: no scan can see those records again."""
    await session.execute(sa.delete(WebhookMarker).where(col(WebhookMarker.window) < window))
