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
in a range of days, the cells of a row, and how to store a row's arrival. A person is
*unknown* once the request behind the row was erased (or, for wellbeing, the ally profile
deleted): see aggregates/marks.py for why that matters.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import Interval, as_instant, bucket_start, next_bucket
from allyapi.aggregates.calendar import TopicCalendar
from allyapi.aggregates.marks import ABSORBED_ANY, Kind
from allyapi.contact_requests.models import ContactRequest, RequestStatus
from allyapi.core.db.models import table_of
from allyapi.feedback.models import ProgramFeedback, RequestFeedback

CR = table_of(ContactRequest)
RF = table_of(RequestFeedback)
PF = table_of(ProgramFeedback)


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


def _absorbed_in(marks: Any) -> Any:
    return marks.op("&")(ABSORBED_ANY) != 0


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
    """One event of a contact request; cells are the request's creation (cohort) cells."""

    def __init__(self, name: str, due: Any, event_at: Any, *, by_ally: bool = False) -> None:
        self.name = name
        self.seq = CR.c[f"{name}_seq"]
        self.marks = CR.c[f"{name}_marks"]
        self.due = sa.and_(due, self.seq.is_(None))
        self.event_at = event_at
        self.by_ally = by_ally

    def _columns(self) -> list[Any]:
        return [
            CR.c.id, CR.c.created_at, CR.c.accepted_at, CR.c.requester_ref, CR.c.erased_at,
            CR.c.urgency, CR.c.topic, CR.c.ally_id,
        ]  # fmt: skip

    def _row(self, found: Any) -> Row:
        (row_id, created, accepted, ref, erased, urgency, topic, ally) = found[:8]
        if self.by_ally:
            person = None if ally is None else str(ally)
        else:
            person = None if erased is not None else ref
        hours = None
        if self.name == "accepted" and accepted is not None:
            hours = round((accepted - created).total_seconds() / 3600, 1)
        return Row(row_id, _day(created), person, urgency, topic, hours=hours)

    async def pending(self, session: AsyncSession, org: str, limit: int) -> list[Row]:
        query = (
            sa.select(*self._columns())
            .where(CR.c.org_id == org, self.due)
            .order_by(self.event_at, CR.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [self._row(found) for found in (await session.execute(query)).all()]

    async def arrived(
        self, session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
    ) -> list[tuple[Row, int]]:
        if self.by_ally:
            allies = [uuid.UUID(person) for person in persons]
            who = sa.or_(CR.c.ally_id.in_(allies), CR.c.ally_id.is_(None))
        else:
            who = sa.or_(CR.c.requester_ref.in_(sorted(persons)), CR.c.erased_at.is_not(None))
        query = sa.select(*self._columns(), self.marks).where(
            CR.c.org_id == org,
            CR.c.created_at >= as_instant(span[0]),
            CR.c.created_at < as_instant(span[1]),
            self.seq.is_not(None),
            sa.or_(who, _absorbed_in(self.marks)),
        )
        return [(self._row(found), found[-1]) for found in (await session.execute(query)).all()]

    async def store(self, session: AsyncSession, rows: list[tuple[Row, int, int]]) -> None:
        values: dict[str, Any] = {
            self.seq.name: sa.bindparam("_seq"),
            self.marks.name: sa.bindparam("_marks"),
        }
        if self.name == "accepted":
            values["accept_hours"] = sa.bindparam("_hours")
        statement = sa.update(CR).where(CR.c.id == sa.bindparam("_id")).values(values)
        await session.execute(
            statement,
            [
                {"_id": r.id, "_seq": seq, "_marks": marks, "_hours": r.hours}
                for r, seq, marks in rows
            ],
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

    def _select(self, *extra: Any) -> Any:
        return sa.select(
            RF.c.id, RF.c.created_on, CR.c.requester_ref, CR.c.erased_at, CR.c.urgency,
            RF.c.topic, RF.c.ally_id, RF.c.comment_sealed.is_not(None), *extra,
        ).join(CR, CR.c.id == RF.c.request_id)  # fmt: skip

    @staticmethod
    def _row(found: Any) -> Row:
        row_id, day, ref, erased, urgency, topic, ally, commented = found[:8]
        person = None if erased is not None else ref
        return Row(
            row_id, day, person, urgency, topic, "" if ally is None else str(ally),
            commented=bool(commented),
        )  # fmt: skip

    async def pending(self, session: AsyncSession, org: str, limit: int) -> list[Row]:
        query = (
            self._select()
            .where(RF.c.org_id == org, RF.c.seq.is_(None))
            .order_by(RF.c.created_on, RF.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=RF)
        )
        return [self._row(found) for found in (await session.execute(query)).all()]

    async def arrived(
        self, session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
    ) -> list[tuple[Row, int]]:
        who = sa.or_(CR.c.requester_ref.in_(sorted(persons)), CR.c.erased_at.is_not(None))
        query = self._select(RF.c.marks).where(
            RF.c.org_id == org,
            RF.c.created_on >= span[0],
            RF.c.created_on < span[1],
            RF.c.seq.is_not(None),
            sa.or_(who, _absorbed_in(RF.c.marks)),
        )
        return [(self._row(found), found[-1]) for found in (await session.execute(query)).all()]

    async def store(self, session: AsyncSession, rows: list[tuple[Row, int, int]]) -> None:
        await _store_seq(session, RF, rows)


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
        query = (
            sa.select(PF.c.id, PF.c.created_on, PF.c.category, PF.c.comment_sealed.is_not(None))
            .where(PF.c.org_id == org, PF.c.seq.is_(None))
            .order_by(PF.c.created_on, PF.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [
            Row(row_id, day, str(row_id), category=category, commented=bool(commented))
            for row_id, day, category, commented in (await session.execute(query)).all()
        ]

    async def arrived(
        self, session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
    ) -> list[tuple[Row, int]]:
        return []

    async def store(self, session: AsyncSession, rows: list[tuple[Row, int, int]]) -> None:
        await _store_seq(session, PF, rows)


async def _store_seq(
    session: AsyncSession, table: sa.Table, rows: list[tuple[Row, int, int]]
) -> None:
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values(seq=sa.bindparam("_seq"), marks=sa.bindparam("_marks"))
    )
    await session.execute(
        statement, [{"_id": r.id, "_seq": seq, "_marks": marks} for r, seq, marks in rows]
    )


SOURCES: tuple[Source, ...] = (
    RequestSource("created", sa.true(), CR.c.created_at),
    RequestSource("accepted", CR.c.accepted_at.is_not(None), CR.c.accepted_at),
    RequestSource("completed", CR.c.status == RequestStatus.completed, CR.c.closed_at),
    RequestSource(
        "wellbeing",
        sa.and_(CR.c.status == RequestStatus.completed, CR.c.wellbeing.is_not(None)),
        CR.c.closed_at,
        by_ally=True,
    ),
    FeedbackSource(),
    ProgrammeSource(),
)
