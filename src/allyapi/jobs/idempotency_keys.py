"""Expired ``Idempotency-Key`` rows are deleted (core/http/idempotency.py keeps them >= 24 h).

Batched and safe in several processes: the keys are picked with ``FOR UPDATE SKIP LOCKED`` and
the delete repeats ``expires_at <= now`` in its WHERE (``delete_expired_keys``).
"""

from __future__ import annotations

from functools import partial

from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.http.idempotency import delete_expired_keys
from allyapi.core.settings import Settings
from allyapi.jobs.batches import drain
from allyapi.jobs.runner import Job

BATCH_SIZE = 200


class DeleteExpiredIdempotencyKeys(Job):
    name = "idempotency-keys"

    async def run(self, database: Database, settings: Settings) -> int:
        return await drain(
            database, partial(delete_expired_keys, now=utcnow(), batch_size=BATCH_SIZE)
        )
