"""Time-driven work on contact requests (expiry; retention: docs/privacy.md, P7).

Every job is a loop of short batches, each its own transaction, so it is:
- **bounded**: at most ``batch_size`` rows per transaction and ``max_batches`` per run;
- **idempotent**: rows are chosen by their state (``pending`` and past ``expires_at``; past
  ``content_purge_at`` and not yet purged; past ``expires_at``) and every UPDATE/DELETE repeats
  that state in its WHERE, so a row is changed once however often the job runs;
- **safe in several processes at once**: on PostgreSQL the ids are picked with
  ``FOR UPDATE SKIP LOCKED`` (two runners take disjoint rows; neither waits on a live request)
  and a guarded UPDATE ... RETURNING tells which rows this run really holds, so each request
  is expired, and its slots freed, exactly once. SQLite has one writer at a time; the guarded
  write takes its lock before the rows are read.

Expiry goes through ``Lifecycle.move`` (the one place a status changes and slots are freed);
the retention purge is the P7 counterpart of ``Lifecycle.erase`` without the erasure itself:
the requester still sees the request (topic, status, day-truncated dates), with no content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.lifecycle import Lifecycle, day_of
from allyapi.contact_requests.repository import (
    DATE_FIELDS,
    claim_expired,
    purge_candidates,
    purge_content,
)
from allyapi.contact_requests.traces_repository import RequestTraces
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database, checkpoint_sqlite_wal
from allyapi.core.http.idempotency import delete_expired_keys
from allyapi.core.settings import Settings
from allyapi.jobs.audit_retention import purge_audit
from allyapi.jobs.batches import drain
from allyapi.jobs.runner import Job

BATCH_SIZE = 200


@dataclass(frozen=True)
class JobCounts:
    expired: int
    purged: int
    idempotency_keys_deleted: int
    audit_events_deleted: int = 0


async def expire_batch(
    session: AsyncSession, lifecycle: Lifecycle, now: datetime, batch_size: int
) -> int:
    """``pending → expired`` for requests past their response window, through the same
    ``Lifecycle.move`` as every other status change (so the slots are freed the same way)."""
    expired = 0
    for request in await claim_expired(session, now, batch_size):
        await lifecycle.move(request, "expire", now)
        expired += 1
    return expired


async def purge_batch(session: AsyncSession, now: datetime, batch_size: int) -> int:
    """P7 retention: protected content of closed requests past ``content_purge_at`` destroyed."""
    rows = await purge_candidates(session, now, batch_size)
    if not rows:
        return 0
    # Thread, access log, data key, per-request deliveries and the feedback comment first:
    # they are protected content or link to it, and a request whose row says "purged" must
    # never still have them (traces_repository.py).
    await RequestTraces(session).delete_content([request_id for request_id, _ in rows])
    purged = 0
    for request_id, dates in rows:
        days = {name: day_of(value) for name, value in zip(DATE_FIELDS, dates, strict=True)}
        purged += await purge_content(session, request_id, now, day_of(now), days)
    return purged


async def run_all_jobs(
    database: Database, settings: Settings, *, now: datetime | None = None
) -> JobCounts:
    """One pass of every request job, the idempotency-key cleanup and the audit trail's
    retention (``allyapi purge``)."""
    at = now or utcnow()
    expired, purged = await expire_and_purge(database, settings, at)
    keys = await drain(database, partial(delete_expired_keys, now=at, batch_size=BATCH_SIZE))
    audit = await purge_audit(database, settings, at)
    return JobCounts(
        expired=expired, purged=purged, idempotency_keys_deleted=keys, audit_events_deleted=audit
    )


async def expire_and_purge(database: Database, settings: Settings, at: datetime) -> tuple[int, int]:
    """Expiry runs before the purge so a request expired in this pass gets its purge date now."""
    size = BATCH_SIZE
    window = timedelta(hours=settings.response_window_hours)
    retention = timedelta(days=settings.retention_days)

    async def expire(session: AsyncSession) -> int:
        lifecycle = Lifecycle(session, response_window=window, retention=retention)
        return await expire_batch(session, lifecycle, at, size)

    expired = await drain(database, expire)
    purged = await drain(database, lambda s: purge_batch(s, at, size))
    if purged:
        await checkpoint_sqlite_wal(database)
    return expired, purged


class ExpireAndPurgeRequests(Job):
    """Pending requests past their window expire; closed ones past retention are purged."""

    name = "contact-request-jobs"

    async def run(self, database: Database, settings: Settings) -> JobCounts:
        at = utcnow()
        expired, purged = await expire_and_purge(database, settings, at)
        return JobCounts(expired=expired, purged=purged, idempotency_keys_deleted=0)
