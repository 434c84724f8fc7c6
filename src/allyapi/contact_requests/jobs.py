"""Time-driven work on contact requests (expiry; retention: docs/privacy.md, P7) and
idempotency keys.

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

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.audit.repository import purge_audit_batch
from allyapi.contact_requests.lifecycle import Lifecycle, day_of
from allyapi.contact_requests.models import ContactRequest, RequestStatus
from allyapi.contact_requests.traces import RequestTraces
from allyapi.core.background import PeriodicRunner
from allyapi.core.database import Database, checkpoint_sqlite_wal
from allyapi.core.idempotency import IdempotencyKey
from allyapi.core.models import utcnow
from allyapi.core.settings import Settings

BATCH_SIZE = 200
MAX_BATCHES = 50  # 10 000 rows per job per run; the rest waits for the next run

# Dates kept after the content is gone are truncated to the day (P7: dates truncated to the day).
_DATE_FIELDS = (
    "created_at",
    "updated_at",
    "expires_at",
    "accepted_at",
    "closed_at",
    "content_purge_at",
)
_DATE_COLUMNS = tuple(getattr(ContactRequest, name) for name in _DATE_FIELDS)


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
    due = sa.and_(
        col(ContactRequest.status) == RequestStatus.pending,
        col(ContactRequest.expires_at) <= now,
    )
    ids = list(
        await session.scalars(
            sa.select(col(ContactRequest.id))
            .where(due)
            .order_by(col(ContactRequest.expires_at))
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return 0
    # Claim the rows with a guarded no-op write before reading them: on PostgreSQL the rows are
    # already locked; on SQLite this takes the write lock, so no request can accept or cancel
    # one of them between our read and our write (pysqlite starts no transaction for a SELECT).
    claimed = list(
        await session.scalars(
            sa.update(ContactRequest)
            .where(col(ContactRequest.id).in_(ids), due)
            .values(status=col(ContactRequest.status))
            .returning(col(ContactRequest.id))
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        return 0
    requests = await session.scalars(
        sa.select(ContactRequest)
        .where(col(ContactRequest.id).in_(claimed))
        .execution_options(populate_existing=True)
    )
    expired = 0
    for request in requests:
        await lifecycle.move(request, "expire", now)
        expired += 1
    return expired


async def purge_batch(session: AsyncSession, now: datetime, batch_size: int) -> int:
    """P7 retention: protected content of closed requests past ``content_purge_at`` destroyed."""
    due = sa.and_(
        col(ContactRequest.content_purge_at) <= now,
        col(ContactRequest.content_purged_at).is_(None),
        col(ContactRequest.status).not_in([RequestStatus.pending, RequestStatus.accepted]),
    )
    rows = (
        await session.execute(
            sa.select(col(ContactRequest.id), *_DATE_COLUMNS)
            .where(due)
            .order_by(col(ContactRequest.content_purge_at))
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return 0
    ids: list[uuid.UUID] = [row[0] for row in rows]
    # Thread, access log, data key, per-request deliveries and the feedback comment first:
    # they are protected content or link to it, and a request whose row says "purged" must
    # never still have them (traces.py).
    await RequestTraces(session).delete_content(ids)
    purged = 0
    for row in rows:
        days = {name: day_of(value) for name, value in zip(_DATE_FIELDS, row[1:], strict=True)}
        result = await session.execute(
            sa.update(ContactRequest)
            .where(col(ContactRequest.id) == row[0], due)
            .values(
                message_sealed=None,
                contact_detail_sealed=None,
                alias_sealed=None,
                content_purged_at=day_of(now),
                **days,
            )
            .execution_options(synchronize_session=False)
        )
        purged += result.rowcount  # type: ignore[attr-defined]
    return purged


async def delete_idempotency_batch(session: AsyncSession, now: datetime, batch_size: int) -> int:
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


BatchJob = Callable[[AsyncSession], Awaitable[int]]


async def _drain(database: Database, job: BatchJob) -> int:
    """Run ``job`` batch after batch, one transaction each, until a batch changes nothing."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with database.sessionmaker() as session, session.begin():
            changed = await job(session)
        total += changed
        if changed == 0:
            break
    return total


async def run_all_jobs(
    database: Database, settings: Settings, *, now: datetime | None = None
) -> JobCounts:
    """One pass of every job (``allyapi purge`` and the in-server runner both call this).

    Expiry runs before the purge so a request expired in this pass gets its purge date now.
    """
    at = now or utcnow()
    size = BATCH_SIZE
    window = timedelta(hours=settings.response_window_hours)
    retention = timedelta(days=settings.retention_days)

    async def expire(session: AsyncSession) -> int:
        lifecycle = Lifecycle(session, response_window=window, retention=retention)
        return await expire_batch(session, lifecycle, at, size)

    expired = await _drain(database, expire)
    purged = await _drain(database, lambda s: purge_batch(s, at, size))
    if purged:
        await checkpoint_sqlite_wal(database)
    keys = await _drain(database, lambda s: delete_idempotency_batch(s, at, size))
    audit_before = at - timedelta(days=settings.audit_retention_days)
    audit = await _drain(database, lambda s: purge_audit_batch(s, audit_before, size))
    return JobCounts(
        expired=expired, purged=purged, idempotency_keys_deleted=keys, audit_events_deleted=audit
    )


def start_background_jobs(settings: Settings, database: Database) -> PeriodicRunner | None:
    """Start the in-server runner (app lifespan); None when ``jobs_interval_seconds`` is 0."""
    if settings.jobs_interval_seconds <= 0:
        return None
    runner = PeriodicRunner(
        "contact-request-jobs",
        partial(run_all_jobs, database, settings),
        settings.jobs_interval_seconds,
    )
    runner.start()
    return runner
