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

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.runner import Job
from allyapi.training.repository import expiring_to_announce
from allyapi.webhooks.outbox import enqueue
from allyapi.webhooks.repository import delete_markers_before, mark_once

EVENT = "training.expiring"
HORIZON = timedelta(days=30)
KEEP_MARKERS = timedelta(days=90)
BATCH_SIZE = 200
MAX_BATCHES = 50


async def emit_expiring_batch(session: AsyncSession, on: date) -> int:
    emitted = 0
    for record in await expiring_to_announce(session, on, HORIZON, EVENT, BATCH_SIZE):
        if record.expires_on is None:
            continue
        window = record.expires_on.isoformat()
        if await mark_once(session, record.org_id, EVENT, record.id, window):
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
        await delete_markers_before(session, (day - KEEP_MARKERS).isoformat())
    return total


EXPIRING_INTERVAL_SECONDS = 3600.0


class TrainingExpiring(Job):
    """Hourly in every server process, while webhook deliveries are on."""

    name = "webhook-training-expiring"

    def interval_seconds(self, settings: Settings) -> float:
        return EXPIRING_INTERVAL_SECONDS if settings.webhook_interval_seconds > 0 else 0

    async def run(self, database: Database, settings: Settings) -> int:
        return await emit_training_expiring(database)
