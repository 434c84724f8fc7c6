"""Batch upsert of training records from an LMS/HRIS, keyed by (org, external_id).

Choices the product rules leave open:
- A body that breaks the schema (a missing field, a wrong type, an unknown field, over 1000
  rows) is a 422 for the whole request, like any endpoint: the contract says what a row is.
  Rows that fit the schema are checked and resolved one by one: a bad row (both or neither
  reference, a future date, an unknown ally or course, a repeated external_id) answers
  ``error`` with a code and the other rows are still written. The response is 200 with one
  result per row, in order.
- A row is the source's whole truth for its record: an existing record's ally, course,
  completion date, evidence and verified flag are replaced; equal values answer ``unchanged``.
- An external_id repeated within one batch: the first occurrence wins, later ones are errors.
- Races: new rows are inserted with ``ON CONFLICT DO NOTHING`` on the org/external_id unique
  constraint; a row a concurrent batch inserted first is re-read and compared like any existing
  one. The transaction never aborts and no duplicate can exist. (Per-row savepoints were not
  used: on pysqlite a SAVEPOINT opened before the first write commits on release.)
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.announcements import announce_listing_changes
from allyapi.core.auth.pseudonym import Subject, subject_ref
from allyapi.core.db.models import utcnow
from allyapi.training.dates import expires_on
from allyapi.training.models import TrainingCourse, TrainingRecord
from allyapi.training.repository import AllyLookup, CourseRepository, RecordRepository
from allyapi.training.schemas import (
    BatchErrorCode,
    BatchRow,
    BatchRowError,
    BatchRowResult,
    TrainingRecordBatchResult,
)
from allyapi.training.service import settle_expiry


@dataclass
class Desired:
    """What a valid row says its record must look like."""

    index: int
    external_id: str
    ally_id: uuid.UUID
    course_id: uuid.UUID
    completed_on: date
    validity_months: int | None
    evidence_ref: str | None
    verified: bool

    @property
    def expires_on(self) -> date | None:
        return expires_on(self.completed_on, self.validity_months)

    def matches(self, record: TrainingRecord) -> bool:
        return (
            record.ally_id == self.ally_id
            and record.course_id == self.course_id
            and record.completed_on == self.completed_on
            and record.expires_on == self.expires_on
            and record.evidence_ref == self.evidence_ref
            and record.verified == self.verified
        )


@dataclass
class References:
    """What the batch's ally and course references resolve to in the caller's org."""

    refs: dict[str, str]
    ally_ids: set[uuid.UUID]
    ally_by_ref: dict[str, uuid.UUID]
    course_by_id: dict[uuid.UUID, TrainingCourse]
    course_by_name: dict[str, TrainingCourse]

    def ally_for(self, row: BatchRow) -> uuid.UUID | None:
        if row.ally_id is not None:
            return row.ally_id if row.ally_id in self.ally_ids else None
        return self.ally_by_ref.get(self.refs[row.sub or ""])

    def course_for(self, row: BatchRow) -> TrainingCourse | None:
        if row.course_id is not None:
            return self.course_by_id.get(row.course_id)
        return self.course_by_name.get(row.course_name or "")


def _error(index: int, external_id: str, code: BatchErrorCode, detail: str) -> BatchRowResult:
    return BatchRowResult(
        index=index,
        external_id=external_id,
        status="error",
        error=BatchRowError(code=code, detail=detail),
    )


class BatchService:
    def __init__(self, session: AsyncSession, pseudonym_key: bytes) -> None:
        self.session = session
        self.key = pseudonym_key
        self.records = RecordRepository(session)
        self.courses = CourseRepository(session)
        self.allies = AllyLookup(session)

    async def upsert(
        self, org_id: str, rows: Sequence[BatchRow], person: Callable[[str], Subject]
    ) -> TrainingRecordBatchResult:
        """``person``: who a row's ``sub`` names (a person at the caller's own issuer)."""
        results: dict[int, BatchRowResult] = {}
        valid: list[tuple[int, BatchRow]] = []
        seen: set[str] = set()
        for index, row in enumerate(rows):
            problem = row.problem()
            if problem is not None:
                results[index] = _error(index, row.external_id, "invalid", problem)
            elif row.external_id in seen:
                results[index] = _error(
                    index, row.external_id, "duplicate_external_id", "repeated in this batch"
                )
            else:
                seen.add(row.external_id)
                valid.append((index, row))
        desired = await self._resolve(org_id, valid, results, person)
        await self._write(org_id, desired, results)
        used = {item.course_id: item.validity_months for item in desired}
        await settle_expiry(self.courses, org_id, used)
        # A row may move a record from one ally to another: the whole org is re-checked (one
        # UPDATE), rather than tracking every ally a row touched before and after.
        if desired:
            await announce_listing_changes(self.session, org_id, None)
        ordered = [results[index] for index in range(len(rows))]
        count = Counter(result.status for result in ordered)
        return TrainingRecordBatchResult(
            created=count["created"],
            updated=count["updated"],
            unchanged=count["unchanged"],
            errors=count["error"],
            results=ordered,
        )

    async def _references(
        self, org_id: str, rows: list[BatchRow], person: Callable[[str], Subject]
    ) -> References:
        """Allies and courses of every row: one query per kind (chunked IN), not per row."""
        refs = {row.sub: subject_ref(self.key, "ally", person(row.sub)) for row in rows if row.sub}
        return References(
            refs=refs,
            ally_ids=await self.allies.existing_ids(
                org_id, [row.ally_id for row in rows if row.ally_id]
            ),
            ally_by_ref=await self.allies.ids_by_subject(org_id, refs.values()),
            course_by_id=await self.courses.by_ids(
                org_id, [row.course_id for row in rows if row.course_id]
            ),
            course_by_name=await self.courses.by_names(
                org_id, [row.course_name for row in rows if row.course_name]
            ),
        )

    async def _resolve(
        self,
        org_id: str,
        valid: list[tuple[int, BatchRow]],
        results: dict[int, BatchRowResult],
        person: Callable[[str], Subject],
    ) -> list[Desired]:
        found = await self._references(org_id, [row for _, row in valid], person)
        desired: list[Desired] = []
        for index, row in valid:
            ally_id, course = found.ally_for(row), found.course_for(row)
            if ally_id is None:
                detail = "no ally with this ally_id" if row.ally_id else "no ally with this sub"
                results[index] = _error(index, row.external_id, "ally_not_found", detail)
            elif course is None:
                results[index] = _error(index, row.external_id, "course_not_found", "no course")
            else:
                desired.append(
                    Desired(
                        index=index,
                        external_id=row.external_id,
                        ally_id=ally_id,
                        course_id=course.id,
                        completed_on=row.completed_on,
                        validity_months=course.validity_months,
                        evidence_ref=row.evidence_ref,
                        verified=row.verified,
                    )
                )
        return desired

    async def _write(
        self, org_id: str, desired: list[Desired], results: dict[int, BatchRowResult]
    ) -> None:
        existing = await self.records.by_external_ids(org_id, [d.external_id for d in desired])
        fresh = sorted(
            (d for d in desired if d.external_id not in existing), key=lambda d: d.external_id
        )
        inserted = await self.records.insert_new([self._new_row(org_id, d) for d in fresh])
        lost = [d.external_id for d in fresh if d.external_id not in inserted]
        if lost:  # a concurrent batch inserted these first: compare with what it stored
            existing.update(await self.records.by_external_ids(org_id, lost))
        for item in desired:
            if item.external_id in inserted:
                results[item.index] = BatchRowResult(
                    index=item.index,
                    external_id=item.external_id,
                    status="created",
                    id=inserted[item.external_id],
                )
                continue
            record = existing[item.external_id]
            status = "unchanged" if item.matches(record) else "updated"
            if status == "updated":
                self._apply(record, item)
            results[item.index] = BatchRowResult(
                index=item.index, external_id=item.external_id, status=status, id=record.id
            )
        await self.session.flush()

    @staticmethod
    def _new_row(org_id: str, item: Desired) -> dict[str, Any]:
        now = utcnow()
        return {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "ally_id": item.ally_id,
            "course_id": item.course_id,
            "completed_on": item.completed_on,
            "expires_on": item.expires_on,
            "verified": item.verified,
            "verified_at": now if item.verified else None,
            "evidence_ref": item.evidence_ref,
            "external_id": item.external_id,
        }

    @staticmethod
    def _apply(record: TrainingRecord, item: Desired) -> None:
        now = utcnow()
        if item.verified and not record.verified:
            record.verified_at = now
        elif not item.verified:
            record.verified_at = None
        record.ally_id = item.ally_id
        record.course_id = item.course_id
        record.completed_on = item.completed_on
        record.expires_on = item.expires_on
        record.evidence_ref = item.evidence_ref
        record.verified = item.verified
        record.version += 1
        record.updated_at = now
