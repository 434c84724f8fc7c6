"""Training rules: the course catalogue and individual training records.

Choices the product rules leave open:
- A record's ``expires_on`` is derived (completed_on + the course's validity in calendar
  months, clamped to the month's end); changing a course's validity re-derives it for every
  record of the course, so listing follows at once.
- References in a body (``course_id``, ``ally_id``) that do not exist in the caller's org are a
  422 pointing at the field; ids in the path are a 404.
- An ally self-reports (``verified=false``); a coordinator's record is verified at once.
- Records page by (created_at, id) ascending: new records land at the end, so a client paging
  through never skips or repeats one.
- Every write here can change who is *listed*: each ends with ``announce_listing_changes``
  for the allies it touched (the whole org for a course), in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.announcements import announce_listing_changes
from allyapi.core.db.models import today, utcnow
from allyapi.core.http.errors import Conflict, Forbidden, InvalidInput, NotFound
from allyapi.core.http.etag import check_if_match
from allyapi.core.http.idempotency import Idempotency, IdempotencyScope, Made
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page
from allyapi.training.dates import RecordStatus, expires_on
from allyapi.training.models import TrainingCourse, TrainingRecord
from allyapi.training.repository import AllyLookup, CourseRepository, RecordRepository
from allyapi.training.schemas import (
    TrainingCourseCreate,
    TrainingCoursePublic,
    TrainingCourseUpdate,
    TrainingRecordCreate,
    TrainingRecordPublic,
)


@dataclass(frozen=True)
class TrainingActor:
    """Who acts on training records: a coordinator (the whole org) or an ally (their own)."""

    org: str
    coordinator: bool
    ally_id: uuid.UUID | None


async def settle_expiry(
    courses: CourseRepository, org_id: str, used: dict[uuid.UUID, int | None]
) -> None:
    """After writing records whose expiry was derived from ``used`` validities: re-derive a
    course's records if its validity changed meanwhile.

    On PostgreSQL the FOR SHARE lock on the course already orders the two; on SQLite a SELECT
    runs outside the transaction, so a validity change can commit between reading the course
    and writing the record. Once the write holds SQLite's lock, this read is up to date.
    """
    current = await courses.validities(org_id, used)
    for course_id, months in current.items():
        if months != used[course_id]:
            await courses.rederive_expiry(
                org_id, course_id, partial(expires_on, validity_months=months)
            )


class CourseService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = CourseRepository(session)

    async def list(
        self, org_id: str, *, page: PageRequest, required: bool | None
    ) -> Page[TrainingCoursePublic]:
        rows = await self.repo.page(
            org_id, limit=page.fetch, after=page.after_text(), required=required
        )
        shown, next_cursor = page.split(rows, lambda row: (row.name, row.id))
        items = [TrainingCoursePublic.model_validate(row) for row in shown]
        return Page[TrainingCoursePublic](items=items, next_cursor=next_cursor)

    async def get(
        self, org_id: str, course_id: uuid.UUID, *, for_update: bool = False
    ) -> TrainingCourse:
        course = await self.repo.get(org_id, course_id, for_update=for_update)
        if course is None:
            raise NotFound("training course not found")
        return course

    async def create(
        self, org_id: str, body: TrainingCourseCreate, idempotency: IdempotencyScope | None
    ) -> Made[TrainingCourse]:
        """With an Idempotency-Key, a repeat answers the course as it is now (no second row,
        no 409); a 409 is not remembered, so retrying after one tries again."""
        if idempotency is not None:
            replay = await Idempotency(self.session).claim(idempotency)
            if replay is not None:
                return Made(await self.get(org_id, replay.resource_id), replayed=True)
        course = TrainingCourse(org_id=org_id, **body.model_dump())
        self.repo.add(course)
        await self._flush_unique_name()
        if course.required:  # nobody holds it yet: every listed ally drops out
            await announce_listing_changes(self.session, org_id, None)
        if idempotency is not None:
            await Idempotency(self.session).remember(idempotency, course.id, 201)
        return Made(course)

    async def update(
        self,
        org_id: str,
        course_id: uuid.UUID,
        body: TrainingCourseUpdate,
        if_match: str | None,
    ) -> TrainingCourse:
        course = await self.get(org_id, course_id, for_update=True)
        check_if_match(if_match, course.id, course.version)
        changes = body.model_dump(exclude_unset=True)
        validity_changed = (
            "validity_months" in changes and changes["validity_months"] != course.validity_months
        )
        for field, value in changes.items():
            setattr(course, field, value)
        course.version += 1
        course.updated_at = utcnow()
        await self._flush_unique_name()
        if validity_changed:
            await self.repo.rederive_expiry(
                org_id, course.id, partial(expires_on, validity_months=course.validity_months)
            )
        if validity_changed or "required" in changes:
            await announce_listing_changes(self.session, org_id, None)
        return course

    async def _flush_unique_name(self) -> None:
        # The unique constraint decides, so two coordinators racing cannot both win.
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict("a training course with this name already exists") from None


class RecordService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = RecordRepository(session)
        self.courses = CourseRepository(session)
        self.allies = AllyLookup(session)

    async def ally_of(self, org_id: str, ally_subject_ref: str) -> uuid.UUID | None:
        return await self.allies.id_by_subject(org_id, ally_subject_ref)

    async def list(
        self,
        actor: TrainingActor,
        *,
        page: PageRequest,
        ally_id: uuid.UUID | None,
        course_id: uuid.UUID | None,
        status: RecordStatus | None,
    ) -> Page[TrainingRecordPublic]:
        if not actor.coordinator:
            if ally_id is not None and ally_id != actor.ally_id:
                raise Forbidden("allies see only their own training records")
            ally_id = actor.ally_id
        on = today()
        rows = await self.repo.page(
            actor.org,
            limit=page.fetch,
            after=page.after_time(),
            ally_id=ally_id,
            course_id=course_id,
            status=status,
            today=on,
        )
        shown, next_cursor = page.split(rows, lambda row: (row.created_at, row.id))
        items = [TrainingRecordPublic.of(row, on) for row in shown]
        return Page[TrainingRecordPublic](items=items, next_cursor=next_cursor)

    async def get(
        self, actor: TrainingActor, record_id: uuid.UUID, *, for_update: bool = False
    ) -> TrainingRecord:
        record = await self.repo.get(actor.org, record_id, for_update=for_update)
        # Another ally's record answers like a missing one: "not found or not yours".
        if record is None or not (actor.coordinator or record.ally_id == actor.ally_id):
            raise NotFound("training record not found")
        return record

    async def create(
        self,
        actor: TrainingActor,
        body: TrainingRecordCreate,
        idempotency: IdempotencyScope | None,
    ) -> Made[TrainingRecord]:
        """With an Idempotency-Key, a repeat answers the record as it is now (404 once deleted)."""
        if idempotency is not None:
            replay = await Idempotency(self.session).claim(idempotency)
            if replay is not None:
                return Made(await self.get(actor, replay.resource_id), replayed=True)
        record = await self._create(actor, body)
        if idempotency is not None:
            await Idempotency(self.session).remember(idempotency, record.id, 201)
        return Made(record)

    async def _create(self, actor: TrainingActor, body: TrainingRecordCreate) -> TrainingRecord:
        ally_id = await self._ally_for_new_record(actor, body.ally_id)
        course = await self.courses.get(actor.org, body.course_id, share=True)
        if course is None:
            raise InvalidInput("no such training course", loc=("body", "course_id"))
        record = TrainingRecord(
            org_id=actor.org,
            ally_id=ally_id,
            course_id=course.id,
            completed_on=body.completed_on,
            expires_on=expires_on(body.completed_on, course.validity_months),
            verified=actor.coordinator,
            verified_at=utcnow() if actor.coordinator else None,
            evidence_ref=body.evidence_ref,
            external_id=body.external_id,
        )
        self.repo.add(record)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict("a training record with this external_id already exists") from None
        await settle_expiry(self.courses, actor.org, {course.id: course.validity_months})
        await announce_listing_changes(self.session, actor.org, [ally_id])
        return record

    async def _ally_for_new_record(
        self, actor: TrainingActor, requested: uuid.UUID | None
    ) -> uuid.UUID:
        if actor.coordinator:
            if requested is None:
                raise InvalidInput("ally_id is required", loc=("body", "ally_id"))
            if not await self.allies.existing_ids(actor.org, [requested]):
                raise InvalidInput("no such ally", loc=("body", "ally_id"))
            return requested
        assert actor.ally_id is not None  # the dependency admits only coordinators and allies
        if requested is not None and requested != actor.ally_id:
            raise Forbidden("allies report only their own training")
        return actor.ally_id

    async def verify(
        self, actor: TrainingActor, record_id: uuid.UUID, if_match: str | None
    ) -> TrainingRecord:
        record = await self.get(actor, record_id, for_update=True)
        check_if_match(if_match, record.id, record.version)
        if not record.verified:  # idempotent: verifying twice keeps the first verification
            now = utcnow()
            record.verified = True
            record.verified_at = now
            record.version += 1
            record.updated_at = now
            await self.session.flush()
            await announce_listing_changes(self.session, actor.org, [record.ally_id])
        return record

    async def delete(
        self, actor: TrainingActor, record_id: uuid.UUID, if_match: str | None
    ) -> None:
        record = await self.get(actor, record_id, for_update=True)
        check_if_match(if_match, record.id, record.version)
        await self.repo.delete(record)
        await announce_listing_changes(self.session, actor.org, [record.ally_id])
