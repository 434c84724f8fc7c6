"""Time-driven work on contact requests (SPEC §3 expiry, P7 retention) and idempotency keys.

Every job is a loop of short batches, each its own transaction, so it is:
- **bounded**: at most ``batch_size`` rows per transaction and ``max_batches`` per run;
- **idempotent**: rows are chosen by their state (``pending`` and past ``expires_at``; past
  ``content_purge_at`` and not yet purged; past ``expires_at``) and every UPDATE/DELETE repeats
  that state in its WHERE, so a row is changed once however often the job runs;
- **safe in several processes at once**: on PostgreSQL the ids are picked with
  ``FOR UPDATE SKIP LOCKED`` (two runners take disjoint rows; neither waits on a live request)
  and the guarded UPDATE ... RETURNING tells which rows this run really changed, so counters
  are decremented exactly once. SQLite has one writer at a time; the same guards apply.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    RequesterLoad,
    RequestStatus,
)
from allyapi.core.background import PeriodicRunner
from allyapi.core.database import Database
from allyapi.core.idempotency import IdempotencyKey
from allyapi.core.models import utcnow
from allyapi.core.settings import Settings

BATCH_SIZE = 200
MAX_BATCHES = 50  # 10 000 rows per job per run; the rest waits for the next run

# Dates kept after the content is gone are truncated to the day (P7: "day-truncated dates").
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


async def _release_loads(
    session: AsyncSession, released: Sequence[tuple[str, str, uuid.UUID | None]]
) -> None:
    """Give back one open slot per released request to its ally and its requester.

    Clamped at zero rather than failing: a counter that drifted must not stop expiry for
    everyone (the CHECK constraint would abort the whole batch).
    """
    per_ally = Counter(ally_id for _, _, ally_id in released if ally_id is not None)
    per_requester = Counter((org_id, ref) for org_id, ref, _ in released)
    for ally_id, n in sorted(per_ally.items()):
        load = col(Ally.open_requests)
        await session.execute(
            sa.update(Ally)
            .where(col(Ally.id) == ally_id)
            .values(open_requests=sa.case((load >= n, load - n), else_=0))
        )
    for (org_id, ref), n in sorted(per_requester.items()):
        load = col(RequesterLoad.open_requests)
        await session.execute(
            sa.update(RequesterLoad)
            .where(col(RequesterLoad.org_id) == org_id, col(RequesterLoad.requester_ref) == ref)
            .values(open_requests=sa.case((load >= n, load - n), else_=0))
        )


async def expire_batch(
    session: AsyncSession, now: datetime, retention_days: int, batch_size: int
) -> int:
    """``pending → expired`` for requests past their response window; their slots freed."""
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
    result = await session.execute(
        sa.update(ContactRequest)
        .where(col(ContactRequest.id).in_(ids), due)
        .values(
            status=RequestStatus.expired,
            closed_at=now,
            content_purge_at=now + timedelta(days=retention_days),
            updated_at=now,
            version=col(ContactRequest.version) + 1,
        )
        .returning(
            col(ContactRequest.org_id),
            col(ContactRequest.requester_ref),
            col(ContactRequest.ally_id),
        )
        .execution_options(synchronize_session=False)
    )
    released = [(org_id, ref, ally_id) for org_id, ref, ally_id in result.all()]
    await _release_loads(session, released)
    return len(released)


def _day(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


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
    # Thread and access log first: they are protected content too, and a request whose row
    # says "purged" must never still have them.
    await session.execute(sa.delete(ContactMessage).where(col(ContactMessage.request_id).in_(ids)))
    await session.execute(sa.delete(AccessLogEntry).where(col(AccessLogEntry.request_id).in_(ids)))
    purged = 0
    for row in rows:
        days = {name: _day(value) for name, value in zip(_DATE_FIELDS, row[1:], strict=True)}
        result = await session.execute(
            sa.update(ContactRequest)
            .where(col(ContactRequest.id) == row[0], due)
            .values(
                message_sealed=None,
                contact_detail_sealed=None,
                alias_sealed=None,
                content_purged_at=_day(now),
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
    expired = await _drain(database, lambda s: expire_batch(s, at, settings.retention_days, size))
    purged = await _drain(database, lambda s: purge_batch(s, at, size))
    keys = await _drain(database, lambda s: delete_idempotency_batch(s, at, size))
    return JobCounts(expired=expired, purged=purged, idempotency_keys_deleted=keys)


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
