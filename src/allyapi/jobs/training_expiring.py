"""``training.expiring``: once per training record per expiry date, within 30 days of it.

A periodic scan (hourly in every server process; cheap, and the markers make it idempotent)
looks at verified records of active or paused allies that expire within ``HORIZON`` and are
not superseded by a later record of the same course, in orgs that subscribed to the event.
The marker (org, event, record id, expiry date) is inserted with ON CONFLICT DO NOTHING and
the event is enqueued only by the transaction that inserted it, so several processes emit it
once. A renewed record (new expiry date) is a new window and is announced again.
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from allyapi.allies.models import Ally, AllyStatus
from allyapi.core.db.models import json_array_contains, table_of, today
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.runner import Job
from allyapi.training.models import TrainingRecord
from allyapi.webhooks.models import WebhookMarker, WebhookSubscription
from allyapi.webhooks.outbox import enqueue

EVENT = "training.expiring"
HORIZON = timedelta(days=30)
KEEP_MARKERS = timedelta(days=90)
BATCH_SIZE = 200
MAX_BATCHES = 50


async def _mark(session: AsyncSession, org_id: str, record_id: object, window: str) -> bool:
    table = table_of(WebhookMarker)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    result = await session.execute(
        insert.values(
            org_id=org_id, event_type=EVENT, subject_id=record_id, window=window
        ).on_conflict_do_nothing()
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _due(on: date) -> sa.Select[TrainingRecord]:
    later = aliased(TrainingRecord)
    superseded = (
        sa.select(sa.literal(1))
        .where(
            col(later.ally_id) == col(TrainingRecord.ally_id),
            col(later.course_id) == col(TrainingRecord.course_id),
            col(later.verified).is_(True),
            sa.or_(
                col(later.expires_on).is_(None),
                col(later.expires_on) > col(TrainingRecord.expires_on),
            ),
        )
        .exists()
    )
    marked = (
        sa.select(sa.literal(1))
        .where(
            col(WebhookMarker.org_id) == col(TrainingRecord.org_id),
            col(WebhookMarker.event_type) == EVENT,
            col(WebhookMarker.subject_id) == col(TrainingRecord.id),
            col(WebhookMarker.window) == sa.cast(col(TrainingRecord.expires_on), sa.String),
        )
        .exists()
    )
    subscribed = sa.select(col(WebhookSubscription.org_id)).where(
        json_array_contains(col(WebhookSubscription.events), EVENT)
    )
    return (
        sa.select(TrainingRecord)
        .join(Ally, col(Ally.id) == col(TrainingRecord.ally_id))
        .where(
            col(TrainingRecord.verified).is_(True),
            col(TrainingRecord.expires_on) >= on,
            col(TrainingRecord.expires_on) <= on + HORIZON,
            col(Ally.status).in_([AllyStatus.active, AllyStatus.paused]),
            col(TrainingRecord.org_id).in_(subscribed),
            ~superseded,
            ~marked,
        )
        .order_by(col(TrainingRecord.expires_on), col(TrainingRecord.id))
        .limit(BATCH_SIZE)
    )


async def emit_expiring_batch(session: AsyncSession, on: date) -> int:
    emitted = 0
    for record in (await session.scalars(_due(on))).all():
        if record.expires_on is None:
            continue
        if await _mark(session, record.org_id, record.id, record.expires_on.isoformat()):
            await enqueue(
                session,
                record.org_id,
                EVENT,
                {
                    "training_record_id": record.id,
                    "ally_id": record.ally_id,
                    "course_id": record.course_id,
                    "expires_on": record.expires_on.isoformat(),
                },
            )
            emitted += 1
    return emitted


async def emit_training_expiring(database: Database, *, on: date | None = None) -> int:
    """One pass; returns how many events were emitted."""
    day = on or today()
    total = 0
    for _ in range(MAX_BATCHES):
        async with database.sessionmaker() as session, session.begin():
            emitted = await emit_expiring_batch(session, day)
        total += emitted
        if emitted == 0:
            break
    async with database.sessionmaker() as session, session.begin():
        await session.execute(
            sa.delete(WebhookMarker).where(
                col(WebhookMarker.window) < (day - KEEP_MARKERS).isoformat()
            )
        )
    return total


EXPIRING_INTERVAL_SECONDS = 3600.0


class TrainingExpiring(Job):
    """Hourly in every server process, while webhook deliveries are on."""

    name = "webhook-training-expiring"

    def interval_seconds(self, settings: Settings) -> float:
        return EXPIRING_INTERVAL_SECONDS if settings.webhook_interval_seconds > 0 else 0

    async def run(self, database: Database, settings: Settings) -> int:
        return await emit_training_expiring(database)
