"""The audit trail keeps ``ALLYAPI_AUDIT_RETENTION_DAYS``; older events are deleted in batches
(audit/repository.py: picked with ``FOR UPDATE SKIP LOCKED``, safe in several processes)."""

from __future__ import annotations

from datetime import datetime, timedelta

from allyapi.audit.repository import purge_audit_batch
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.batches import drain
from allyapi.jobs.runner import Job

BATCH_SIZE = 200


async def purge_audit(database: Database, settings: Settings, at: datetime) -> int:
    before = at - timedelta(days=settings.audit_retention_days)
    return await drain(database, lambda session: purge_audit_batch(session, before, BATCH_SIZE))


class AuditRetention(Job):
    name = "audit-retention"

    async def run(self, database: Database, settings: Settings) -> int:
        return await purge_audit(database, settings, utcnow())
