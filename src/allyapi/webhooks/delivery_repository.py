"""The deliverer's statements (webhooks/deliverer.py has the sending, the backoff and the
transactions): due deliveries claimed, outcomes recorded, finished deliveries pruned.

Each runs in the caller's transaction. The claim and the outcome are guarded UPDATEs that
repeat the row's state in their ``WHERE``, so they hold with several processes: what the row
says when the UPDATE runs decides, never what a process read before.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription


@dataclass(frozen=True)
class Claim:
    delivery_id: uuid.UUID
    attempt: int
    event_id: uuid.UUID
    body: str
    url: str
    secret_sealed: str
    subscription_id: uuid.UUID


async def claim_due(
    session: AsyncSession, now: datetime, batch_size: int, lease: timedelta
) -> list[Claim]:
    """Up to ``batch_size`` pending deliveries due at ``now``, oldest due first: picked with
    ``FOR UPDATE SKIP LOCKED`` (two processes take disjoint rows without waiting), then in a
    guarded UPDATE their attempt counted and ``next_attempt_at`` moved ``lease`` ahead, so no
    other process sees them as due while this one sends."""
    due = sa.and_(
        col(WebhookDelivery.status) == DeliveryStatus.pending,
        col(WebhookDelivery.next_attempt_at) <= now,
    )
    ids = list(
        await session.scalars(
            sa.select(col(WebhookDelivery.id))
            .where(due)
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    claimed = (
        await session.execute(
            sa.update(WebhookDelivery)
            .where(col(WebhookDelivery.id).in_(ids), due)
            .values(
                attempts=col(WebhookDelivery.attempts) + 1,
                last_attempt_at=now,
                next_attempt_at=now + lease,
                updated_at=now,
            )
            .returning(
                col(WebhookDelivery.id),
                col(WebhookDelivery.attempts),
                col(WebhookDelivery.event_id),
                col(WebhookDelivery.body),
                col(WebhookDelivery.subscription_id),
            )
            .execution_options(synchronize_session=False)
        )
    ).all()
    return await _with_targets(session, claimed)


async def _with_targets(
    session: AsyncSession, claimed: Sequence[sa.Row[uuid.UUID, int, uuid.UUID, str, uuid.UUID]]
) -> list[Claim]:
    """The URL and sealed secret of each claimed delivery's subscription (one query)."""
    subscription_ids = {row[4] for row in claimed}
    targets = {
        row[0]: (row[1], row[2])
        for row in await session.execute(
            sa.select(
                col(WebhookSubscription.id),
                col(WebhookSubscription.url),
                col(WebhookSubscription.secret_sealed),
            ).where(col(WebhookSubscription.id).in_(subscription_ids))
        )
    }
    return [
        Claim(
            delivery_id=row[0],
            attempt=row[1],
            event_id=row[2],
            body=row[3],
            url=targets[row[4]][0],
            secret_sealed=targets[row[4]][1],
            subscription_id=row[4],
        )
        for row in claimed
        if row[4] in targets
    ]


async def record_outcome(session: AsyncSession, claim: Claim, values: Mapping[str, object]) -> None:
    """Write ``values`` only if the row still carries this claim's attempt and is still pending
    (a manual retry or a deleted subscription in between wins)."""
    await session.execute(
        sa.update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == claim.delivery_id,
            col(WebhookDelivery.attempts) == claim.attempt,
            col(WebhookDelivery.status) == DeliveryStatus.pending,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def prune_finished(session: AsyncSession, before: datetime) -> None:
    """Delete deliveries no longer pending whose last change is older than ``before``."""
    await session.execute(
        sa.delete(WebhookDelivery).where(
            col(WebhookDelivery.status) != DeliveryStatus.pending,
            col(WebhookDelivery.updated_at) < before,
        )
    )
