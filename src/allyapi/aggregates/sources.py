"""The contributions that arrive in the aggregates, one *source* per kind of event.

=============  ===========================  ==========  =================================
source         event                        person      cells (docs/aggregates.md)
=============  ===========================  ==========  =================================
created        a request is made            requester   its creation week/month [× group]
accepted       an ally accepts it           requester   the same cohort cells
completed      the ally completes it        requester   the same cohort cells
wellbeing      the ally's debrief           the ally    the same cohort cells
feedback       the requester's feedback     requester   its week/month [× group], month × ally
programme      anonymous programme answer   the answer  month × category
=============  ===========================  ==========  =================================

Each source knows which rows are still to arrive, which already arrived (with their marks)
in a range of days, the cells of a row, and how to store a row's arrival (the statements are
in aggregates/sources_repository.py). A person is *unknown* once the request behind the row
was erased (or, for wellbeing, the ally profile deleted): see aggregates/marks.py for why
that matters.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates import sources_repository as repository
from allyapi.aggregates.buckets import Interval, bucket_start, next_bucket
from allyapi.aggregates.calendar import TopicCalendar
from allyapi.aggregates.marks import Kind
from allyapi.aggregates.sources_repository import FeedbackRecord, RequestRecord


@dataclass(frozen=True)
class Row:
    id: uuid.UUID
    day: date  # the day that places the row in its period
    person: str | None
    urgency: str = ""
    topic: str = ""
    ally: str = ""
    category: str = ""
    commented: bool = False
    hours: float | None = None


def cohort_cells(row: Row, calendar: TopicCalendar) -> dict[Kind, Hashable]:
    week = bucket_start(row.day, Interval.week)
    month = bucket_start(row.day, Interval.month)
    return {
        Kind.week: week,
        Kind.week_urgency: (week, row.urgency),
        Kind.week_topic: (week, calendar.group(row.topic, Interval.week, row.day)),
        Kind.month: month,
        Kind.month_urgency: (month, row.urgency),
        Kind.month_topic: (month, calendar.group(row.topic, Interval.month, row.day)),
    }


def day_span(days: Sequence[date]) -> tuple[date, date]:
    """The whole weeks and months around ``days``: every cell those days belong to."""
    starts = [bucket_start(day, interval) for day in days for interval in Interval]
    ends = [next_bucket(bucket_start(day, i), i) for day in days for i in Interval]
    return min(starts), max(ends)


def _day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


class Source(ABC):
    name: str
    in_reports = True  # its arrivals change programme report cells

    def cells(self, row: Row, calendar: TopicCalendar) -> dict[Kind, Hashable]:
        return cohort_cells(row, calendar)

    @abstractmethod
    async def pending(self, session: AsyncSession, org: str, limit: int) -> list[Row]:
        """Up to ``limit`` rows whose event has not arrived, locked (skipping locked ones)."""

    @abstractmethod
    async def arrived(
        self, session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
    ) -> list[tuple[Row, int]]:
        """Arrived rows in ``span`` that matter for marking: of ``persons``, of unknown
        persons, or absorbed; with their marks."""

    @abstractmethod
    async def store(self, session: AsyncSession, rows: list[tuple[Row, int, int]]) -> None:
        """Write each row's arrival number and marks."""


class RequestSource(Source):
    """One event of a contact request (when it is due: aggregates/sources_repository.py);
    cells are the request's creation (cohort) cells."""

    def __init__(self, name: str, *, by_ally: bool = False) -> None:
        self.name = name
        self.by_ally = by_ally

    def _row(self, found: RequestRecord) -> Row:
        (row_id, created, accepted, ref, erased, urgency, topic, ally) = found
        if self.by_ally:
            person = None if ally is None else str(ally)
        else:
            person = None if erased is not None else ref
        hours = None
        if self.name == "accepted" and accepted is not None:
            hours = round((accepted - created).total_seconds() / 3600, 1)
        return Row(row_id, _day(created), person, urgency, topic, hours=hours)

    async def pending(self, session: AsyncSession, org: str, limit: int) -> list[Row]:
        found = await repository.pending_requests(session, org, self.name, limit)
        return [self._row(record) for record in found]

    async def arrived(
        self, session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
    ) -> list[tuple[Row, int]]:
        found = await repository.arrived_requests(
            session, org, self.name, span, persons, by_ally=self.by_ally
        )
        return [(self._row(record), marks) for record, marks in found]

    async def store(self, session: AsyncSession, rows: list[tuple[Row, int, int]]) -> None:
        await repository.store_request_arrivals(
            session, self.name, [(r.id, seq, marks, r.hours) for r, seq, marks in rows]
        )


class FeedbackSource(Source):
    """Request feedback: person through the request; cells of the day it was given."""

    name = "feedback"

    def cells(self, row: Row, calendar: TopicCalendar) -> dict[Kind, Hashable]:
        cells = cohort_cells(row, calendar)
        month = bucket_start(row.day, Interval.month)
        cells[Kind.month_ally] = (month, row.ally)
        if row.commented:
            cells[Kind.month_ally_comments] = (month, row.ally)
        return cells

    @staticmethod
    def _row(found: FeedbackRecord) -> Row:
        row_id, day, ref, erased, urgency, topic, ally, commented = found
        person = None if erased is not None else ref
        return Row(
            row_id, day, person, urgency, topic, "" if ally is None else str(ally),
            commented=bool(commented),
        )  # fmt: skip

    async def pending(self, session: AsyncSession, org: str, limit: int) -> list[Row]:
        found = await repository.pending_feedback(session, org, limit)
        return [self._row(record) for record in found]

    async def arrived(
        self, session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
    ) -> list[tuple[Row, int]]:
        found = await repository.arrived_feedback(session, org, span, persons)
        return [(self._row(record), marks) for record, marks in found]

    async def store(self, session: AsyncSession, rows: list[tuple[Row, int, int]]) -> None:
        await repository.store_feedback_arrivals(
            session, [(r.id, seq, marks) for r, seq, marks in rows]
        )


class ProgrammeSource(Source):
    """Anonymous programme answers: one per person, category and month (the quota), so
    every row is its own person and nothing earlier needs to be looked up."""

    name = "programme"
    in_reports = False

    def cells(self, row: Row, calendar: TopicCalendar) -> dict[Kind, Hashable]:
        month = bucket_start(row.day, Interval.month)
        cells: dict[Kind, Hashable] = {Kind.month_category: (month, row.category)}
        if row.commented:
            cells[Kind.month_category_comments] = (month, row.category)
        return cells

    async def pending(self, session: AsyncSession, org: str, limit: int) -> list[Row]:
        found = await repository.pending_programme(session, org, limit)
        return [
            Row(row_id, day, str(row_id), category=category, commented=bool(commented))
            for row_id, day, category, commented in found
        ]

    async def arrived(
        self, session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
    ) -> list[tuple[Row, int]]:
        return []

    async def store(self, session: AsyncSession, rows: list[tuple[Row, int, int]]) -> None:
        await repository.store_programme_arrivals(
            session, [(r.id, seq, marks) for r, seq, marks in rows]
        )


SOURCES: tuple[Source, ...] = (
    RequestSource("created"),
    RequestSource("accepted"),
    RequestSource("completed"),
    RequestSource("wellbeing", by_ally=True),
    FeedbackSource(),
    ProgrammeSource(),
)
