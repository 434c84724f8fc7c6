"""The compliance view: per ally, listed or not and which required courses need attention.

Choices the product rules leave open:
- Only verified records count, exactly as for *Listed*; a course with only self-reported
  (unverified) records is ``missing``.
- For each required course the ally's latest verified record decides: none → ``missing``,
  expired → ``expired``, expiring within 60 days → ``expiring`` (still current).
- Retired allies are left out; ``only_non_compliant`` keeps allies with a missing or expired
  required course (those the training rule keeps out of the directory).
- Pages by (display_name, id); three queries per page, whatever the page size.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import AllyStatus
from allyapi.core.db.models import today
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page
from allyapi.training.dates import RecordStatus, record_status
from allyapi.training.models import TrainingCourse
from allyapi.training.repository import ComplianceRepository, CourseRepository
from allyapi.training.schemas import ComplianceCourse, ComplianceEntry


def _entry(
    ally: tuple[uuid.UUID, str, str, bool],
    required: list[TrainingCourse],
    latest: dict[tuple[uuid.UUID, uuid.UUID], date | None],
    on: date,
) -> ComplianceEntry:
    ally_id, display_name, status, listed = ally
    buckets: dict[str, list[ComplianceCourse]] = {"missing": [], "expiring": [], "expired": []}
    for course in required:
        if (ally_id, course.id) not in latest:
            buckets["missing"].append(ComplianceCourse(course_id=course.id, name=course.name))
            continue
        expiry = latest[(ally_id, course.id)]
        state = record_status(expiry, on)
        if state is not RecordStatus.valid:
            buckets[state.value].append(
                ComplianceCourse(course_id=course.id, name=course.name, expires_on=expiry)
            )
    return ComplianceEntry(
        ally_id=ally_id,
        display_name=display_name,
        status=AllyStatus(status),
        listed=bool(listed),
        **buckets,
    )


class ComplianceService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = ComplianceRepository(session)
        self.courses = CourseRepository(session)

    async def page(
        self, org_id: str, *, page: PageRequest, only_non_compliant: bool
    ) -> Page[ComplianceEntry]:
        on = today()
        rows = await self.repo.allies_page(
            org_id,
            today=on,
            limit=page.fetch,
            after=page.after_text(),
            only_non_compliant=only_non_compliant,
        )
        cut, next_cursor = page.split(rows, lambda row: (row[1], row[0]))
        shown = [(row[0], row[1], row[2], row[3]) for row in cut]
        required = list(await self.courses.required(org_id)) if shown else []
        latest = await self.repo.latest_verified(org_id, [row[0] for row in shown]) if shown else {}
        items = [_entry(row, required, latest, on) for row in shown]
        return Page[ComplianceEntry](items=items, next_cursor=next_cursor)
