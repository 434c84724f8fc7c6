"""Training SQL. Every query is scoped to the caller's org (docs/privacy.md, P8)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from allyapi.allies.listing_repository import listed_clause, missing_required_training
from allyapi.allies.models import Ally, AllyStatus
from allyapi.core.db.models import json_array_contains, utcnow
from allyapi.training.dates import RecordStatus, expiring_horizon
from allyapi.training.models import TrainingCourse, TrainingRecord
from allyapi.webhooks.models import WebhookMarker, WebhookSubscription

# Bound parameters per IN list: far below every backend's limit, and few round trips.
CHUNK = 500
RECORDS: sa.Table = TrainingRecord.metadata.tables["training_records"]


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def status_clause(status: RecordStatus, today: date) -> sa.ColumnElement[bool]:
    """The SQL twin of ``dates.record_status``."""
    expiry = col(TrainingRecord.expires_on)
    horizon = expiring_horizon(today)
    if status is RecordStatus.expired:
        return sa.and_(expiry.is_not(None), expiry <= today)
    if status is RecordStatus.expiring:
        return sa.and_(expiry > today, expiry <= horizon)
    return sa.or_(expiry.is_(None), expiry > horizon)


class AllyLookup:
    """The few facts about allies the training domain needs (read-only)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def id_by_subject(self, org_id: str, subject_ref: str) -> uuid.UUID | None:
        query = select(Ally.id).where(Ally.org_id == org_id, Ally.subject_ref == subject_ref)
        return (await self.session.execute(query)).scalars().first()

    async def existing_ids(self, org_id: str, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for part in chunks(sorted(set(ids))):
            query = select(Ally.id).where(Ally.org_id == org_id, col(Ally.id).in_(part))
            found.update((await self.session.execute(query)).scalars().all())
        return found

    async def ids_by_subject(self, org_id: str, refs: Iterable[str]) -> dict[str, uuid.UUID]:
        found: dict[str, uuid.UUID] = {}
        for part in chunks(sorted(set(refs))):
            query = select(Ally.subject_ref, Ally.id).where(
                Ally.org_id == org_id, col(Ally.subject_ref).in_(part)
            )
            found.update({ref: ally_id for ref, ally_id in await self.session.execute(query)})
        return found


class CourseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, org_id: str, course_id: uuid.UUID, *, for_update: bool = False, share: bool = False
    ) -> TrainingCourse | None:
        """``share``: FOR SHARE, held by whoever derives an expiry from the course's validity,
        so a concurrent validity change waits for them (or they for it) and no record keeps
        an expiry derived from the old validity."""
        query = select(TrainingCourse).where(
            TrainingCourse.org_id == org_id, TrainingCourse.id == course_id
        )
        if for_update or share:
            query = query.with_for_update(read=share and not for_update)
        return (await self.session.execute(query)).scalars().first()

    async def page(
        self, org_id: str, *, limit: int, after: tuple[str, uuid.UUID] | None, required: bool | None
    ) -> Sequence[TrainingCourse]:
        query = select(TrainingCourse).where(TrainingCourse.org_id == org_id)
        if required is not None:
            query = query.where(TrainingCourse.required == required)
        if after is not None:
            query = query.where(sa.tuple_(TrainingCourse.name, TrainingCourse.id) > after)
        query = query.order_by(col(TrainingCourse.name), col(TrainingCourse.id)).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def by_ids(
        self, org_id: str, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, TrainingCourse]:
        found: dict[uuid.UUID, TrainingCourse] = {}
        for part in chunks(sorted(set(ids))):
            query = (
                select(TrainingCourse)
                .where(TrainingCourse.org_id == org_id, col(TrainingCourse.id).in_(part))
                .with_for_update(read=True)  # see ``get``: expiries are derived from these
            )
            found.update({c.id: c for c in (await self.session.execute(query)).scalars()})
        return found

    async def by_names(self, org_id: str, names: Iterable[str]) -> dict[str, TrainingCourse]:
        found: dict[str, TrainingCourse] = {}
        for part in chunks(sorted(set(names))):
            query = (
                select(TrainingCourse)
                .where(TrainingCourse.org_id == org_id, col(TrainingCourse.name).in_(part))
                .with_for_update(read=True)
            )
            found.update({c.name: c for c in (await self.session.execute(query)).scalars()})
        return found

    async def validities(
        self, org_id: str, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, int | None]:
        """Each course's stored validity, read now (not from the session's identity map)."""
        found: dict[uuid.UUID, int | None] = {}
        for part in chunks(sorted(set(ids))):
            query = sa.select(col(TrainingCourse.id), col(TrainingCourse.validity_months)).where(
                col(TrainingCourse.org_id) == org_id, col(TrainingCourse.id).in_(part)
            )
            found.update(
                {course_id: months for course_id, months in await self.session.execute(query)}
            )
        return found

    async def required(self, org_id: str) -> Sequence[TrainingCourse]:
        query = (
            select(TrainingCourse)
            .where(TrainingCourse.org_id == org_id, col(TrainingCourse.required).is_(True))
            .order_by(col(TrainingCourse.name), col(TrainingCourse.id))
        )
        return (await self.session.execute(query)).scalars().all()

    def add(self, course: TrainingCourse) -> None:
        self.session.add(course)

    async def rederive_expiry(
        self, org_id: str, course_id: uuid.UUID, expiry_of: Callable[[date], date | None]
    ) -> None:
        """Re-derive ``expires_on`` of the course's records: one UPDATE per completion date."""
        dates_query = (
            select(col(TrainingRecord.completed_on))
            .where(TrainingRecord.org_id == org_id, TrainingRecord.course_id == course_id)
            .distinct()
        )
        completed = (await self.session.execute(dates_query)).scalars().all()
        if not completed:
            return
        update = (
            sa.update(RECORDS)
            .where(
                RECORDS.c.org_id == org_id,
                RECORDS.c.course_id == course_id,
                RECORDS.c.completed_on == sa.bindparam("b_completed"),
            )
            .values(
                expires_on=sa.bindparam("b_expires"),
                version=RECORDS.c.version + 1,
                updated_at=utcnow(),
            )
        )
        params = [{"b_completed": day, "b_expires": expiry_of(day)} for day in completed]
        await self.session.execute(update, params)


class RecordRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, org_id: str, record_id: uuid.UUID, *, for_update: bool = False
    ) -> TrainingRecord | None:
        query = select(TrainingRecord).where(
            TrainingRecord.org_id == org_id, TrainingRecord.id == record_id
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def page(
        self,
        org_id: str,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        ally_id: uuid.UUID | None,
        course_id: uuid.UUID | None,
        status: RecordStatus | None,
        today: date,
    ) -> Sequence[TrainingRecord]:
        query = select(TrainingRecord).where(TrainingRecord.org_id == org_id)
        if ally_id is not None:
            query = query.where(TrainingRecord.ally_id == ally_id)
        if course_id is not None:
            query = query.where(TrainingRecord.course_id == course_id)
        if status is not None:
            query = query.where(status_clause(status, today))
        if after is not None:
            query = query.where(sa.tuple_(TrainingRecord.created_at, TrainingRecord.id) > after)
        query = query.order_by(col(TrainingRecord.created_at), col(TrainingRecord.id))
        return (await self.session.execute(query.limit(limit))).scalars().all()

    async def by_external_ids(
        self, org_id: str, external_ids: Iterable[str]
    ) -> dict[str, TrainingRecord]:
        """Locked in external_id order, so two batches touching the same rows cannot deadlock."""
        found: dict[str, TrainingRecord] = {}
        for part in chunks(sorted(set(external_ids))):
            query = (
                select(TrainingRecord)
                .where(TrainingRecord.org_id == org_id, col(TrainingRecord.external_id).in_(part))
                .order_by(col(TrainingRecord.external_id))
                .with_for_update()
            )
            for record in (await self.session.execute(query)).scalars():
                found[str(record.external_id)] = record
        return found

    async def insert_new(self, rows: Sequence[dict[str, Any]]) -> dict[str, uuid.UUID]:
        """Insert rows whose (org, external_id) is free; skip the ones a concurrent writer took.

        ``ON CONFLICT DO NOTHING`` lets the unique constraint arbitrate races without aborting
        the transaction; the caller re-reads the skipped ids. Returns external_id -> id.
        """
        if not rows:
            return {}
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(RECORDS)
            .on_conflict_do_nothing(index_elements=["org_id", "external_id"])
            .returning(RECORDS.c.external_id, RECORDS.c.id)
        )
        result = await self.session.execute(statement, list(rows))
        return {external_id: record_id for external_id, record_id in result}

    def add(self, record: TrainingRecord) -> None:
        self.session.add(record)

    async def delete(self, record: TrainingRecord) -> None:
        await self.session.delete(record)


class ComplianceRepository:
    """Three queries per page: the allies, the org's required courses, their best records."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def allies_page(
        self,
        org_id: str,
        *,
        today: date,
        limit: int,
        after: tuple[str, uuid.UUID] | None,
        only_non_compliant: bool,
    ) -> Sequence[sa.Row[uuid.UUID, str, str, bool]]:
        query = sa.select(
            col(Ally.id),
            col(Ally.display_name),
            col(Ally.status),
            listed_clause(today).label("listed"),
        ).where(col(Ally.org_id) == org_id, col(Ally.status) != AllyStatus.retired)
        if only_non_compliant:
            query = query.where(missing_required_training(today))
        if after is not None:
            query = query.where(sa.tuple_(Ally.display_name, Ally.id) > after)
        query = query.order_by(col(Ally.display_name), col(Ally.id)).limit(limit)
        return (await self.session.execute(query)).all()

    async def latest_verified(
        self, org_id: str, ally_ids: Sequence[uuid.UUID]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], date | None]:
        """(ally, required course) -> the latest expiry among verified records (None: never).

        A pair that is absent has no verified record at all.
        """
        never = sa.func.max(sa.case((col(TrainingRecord.expires_on).is_(None), 1), else_=0))
        query = (
            sa.select(
                col(TrainingRecord.ally_id),
                col(TrainingRecord.course_id),
                never.label("never"),
                sa.func.max(col(TrainingRecord.expires_on)).label("latest"),
            )
            .join(TrainingCourse, col(TrainingCourse.id) == col(TrainingRecord.course_id))
            .where(
                col(TrainingRecord.org_id) == org_id,
                col(TrainingRecord.ally_id).in_(ally_ids),
                col(TrainingRecord.verified).is_(True),
                col(TrainingCourse.required).is_(True),
            )
            .group_by(col(TrainingRecord.ally_id), col(TrainingRecord.course_id))
        )
        found: dict[tuple[uuid.UUID, uuid.UUID], date | None] = {}
        for ally_id, course_id, never_expires, latest in await self.session.execute(query):
            found[(ally_id, course_id)] = None if never_expires else latest
        return found


async def expiring_to_announce(
    session: AsyncSession, on: date, horizon: timedelta, event: str, batch_size: int
) -> Sequence[TrainingRecord]:
    """Verified records of active or paused allies expiring within ``horizon`` of ``on``, not
    superseded by a later record of the same course, in orgs subscribed to ``event``, whose
    window has no marker yet (``training.expiring``, jobs/training_expiring.py)."""
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
            col(WebhookMarker.event_type) == event,
            col(WebhookMarker.subject_id) == col(TrainingRecord.id),
            col(WebhookMarker.window) == sa.cast(col(TrainingRecord.expires_on), sa.String),
        )
        .exists()
    )
    subscribed = sa.select(col(WebhookSubscription.org_id)).where(
        json_array_contains(col(WebhookSubscription.events), event)
    )
    query = (
        sa.select(TrainingRecord)
        .join(Ally, col(Ally.id) == col(TrainingRecord.ally_id))
        .where(
            col(TrainingRecord.verified).is_(True),
            col(TrainingRecord.expires_on) >= on,
            col(TrainingRecord.expires_on) <= on + horizon,
            col(Ally.status).in_([AllyStatus.active, AllyStatus.paused]),
            col(TrainingRecord.org_id).in_(subscribed),
            ~superseded,
            ~marked,
        )
        .order_by(col(TrainingRecord.expires_on), col(TrainingRecord.id))
        .limit(batch_size)
    )
    return (await session.scalars(query)).all()
