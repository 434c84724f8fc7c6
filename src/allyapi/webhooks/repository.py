"""Webhook SQL for the API routes. Every query is scoped to the caller's org
(docs/privacy.md, P8)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from allyapi.webhooks.models import PER_REQUEST_EVENTS, WebhookDelivery, WebhookSubscription


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
        ).limit(limit + 1)
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
        ).limit(limit + 1)
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
