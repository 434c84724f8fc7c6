"""Expired ``Idempotency-Key`` rows are deleted (core/http/idempotency.py keeps them >= 24 h).

Batched and safe in several processes: the keys are picked with ``FOR UPDATE SKIP LOCKED`` and
the delete repeats ``expires_at <= now`` in its WHERE.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.core.settings import Settings
from allyapi.jobs.batches import drain
from allyapi.jobs.runner import Job

BATCH_SIZE = 200


async def delete_idempotency_batch(
    session: AsyncSession, *, now: datetime, batch_size: int = BATCH_SIZE
) -> int:
    """Idempotency keys past ``expires_at`` (kept ≥ 24 h by the create endpoint)."""
    columns = (
        col(IdempotencyKey.org_id),
        col(IdempotencyKey.caller_ref),
        col(IdempotencyKey.key),
    )
    expired = col(IdempotencyKey.expires_at) <= now
    keys = (
        await session.execute(
            sa.select(*columns).where(expired).limit(batch_size).with_for_update(skip_locked=True)
        )
    ).all()
    if not keys:
        return 0
    result = await session.execute(
        sa.delete(IdempotencyKey).where(
            sa.tuple_(*columns).in_([tuple(row) for row in keys]), expired
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


class DeleteExpiredIdempotencyKeys(Job):
    name = "idempotency-keys"

    async def run(self, database: Database, settings: Settings) -> int:
        return await drain(database, partial(delete_idempotency_batch, now=utcnow()))
