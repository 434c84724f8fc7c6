"""Each source's SQL (aggregates/sources.py): its rows still to arrive, the arrived rows that
matter for marking a batch, and each row's arrival number and marks written back.

Rows still to arrive are taken ``FOR UPDATE SKIP LOCKED``: the pass never waits for a row
another transaction is changing; a skipped row arrives in a later pass. Arrival numbers and
marks are written by primary key in one executemany per batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import as_instant
from allyapi.aggregates.marks import ABSORBED_ANY
from allyapi.contact_requests.models import ContactRequest, RequestStatus
from allyapi.core.db.models import table_of
from allyapi.feedback.models import ProgramFeedback, RequestFeedback

CR = table_of(ContactRequest)
RF = table_of(RequestFeedback)
PF = table_of(ProgramFeedback)

# Per request event: when it is due to arrive, and the moment that orders the pending ones.
REQUEST_EVENTS: dict[str, tuple[Any, Any]] = {
    "created": (sa.true(), CR.c.created_at),
    "accepted": (CR.c.accepted_at.is_not(None), CR.c.accepted_at),
    "completed": (CR.c.status == RequestStatus.completed, CR.c.closed_at),
    "wellbeing": (
        sa.and_(CR.c.status == RequestStatus.completed, CR.c.wellbeing.is_not(None)),
        CR.c.closed_at,
    ),
}


class RequestRecord(NamedTuple):
    id: uuid.UUID
    created_at: datetime
    accepted_at: datetime | None
    requester_ref: str
    erased_at: datetime | None
    urgency: str
    topic: str
    ally_id: uuid.UUID | None


class FeedbackRecord(NamedTuple):
    id: uuid.UUID
    created_on: date
    requester_ref: str
    erased_at: datetime | None
    urgency: str
    topic: str
    ally_id: uuid.UUID | None
    commented: bool


class ProgrammeRecord(NamedTuple):
    id: uuid.UUID
    created_on: date
    category: str
    commented: bool


def _absorbed_in(marks: Any) -> Any:
    return marks.op("&")(ABSORBED_ANY) != 0


def _request_columns() -> list[Any]:
    return [
        CR.c.id, CR.c.created_at, CR.c.accepted_at, CR.c.requester_ref, CR.c.erased_at,
        CR.c.urgency, CR.c.topic, CR.c.ally_id,
    ]  # fmt: skip


async def pending_requests(
    session: AsyncSession, org: str, event: str, limit: int
) -> list[RequestRecord]:
    """Up to ``limit`` requests whose ``event`` is due and has not arrived, in event order."""
    due, event_at = REQUEST_EVENTS[event]
    query = (
        sa.select(*_request_columns())
        .where(CR.c.org_id == org, sa.and_(due, CR.c[f"{event}_seq"].is_(None)))
        .order_by(event_at, CR.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [RequestRecord(*found) for found in (await session.execute(query)).all()]


async def arrived_requests(
    session: AsyncSession,
    org: str,
    event: str,
    span: tuple[date, date],
    persons: set[str],
    *,
    by_ally: bool,
) -> list[tuple[RequestRecord, int]]:
    """Requests created in ``span`` whose ``event`` arrived, with its marks: those of
    ``persons`` (allies' ids ``by_ally``, else requester references), of unknown persons, or
    absorbed."""
    seq, marks = CR.c[f"{event}_seq"], CR.c[f"{event}_marks"]
    if by_ally:
        allies = [uuid.UUID(person) for person in persons]
        who = sa.or_(CR.c.ally_id.in_(allies), CR.c.ally_id.is_(None))
    else:
        who = sa.or_(CR.c.requester_ref.in_(sorted(persons)), CR.c.erased_at.is_not(None))
    query = sa.select(*_request_columns(), marks).where(
        CR.c.org_id == org,
        CR.c.created_at >= as_instant(span[0]),
        CR.c.created_at < as_instant(span[1]),
        seq.is_not(None),
        sa.or_(who, _absorbed_in(marks)),
    )
    return [
        (RequestRecord(*found[:-1]), found[-1]) for found in (await session.execute(query)).all()
    ]


async def store_request_arrivals(
    session: AsyncSession,
    event: str,
    rows: Iterable[tuple[uuid.UUID, int, int, float | None]],
) -> None:
    """Write ``(id, seq, marks, hours)`` of each request's ``event`` (hours: accepted only)."""
    values: dict[str, Any] = {
        f"{event}_seq": sa.bindparam("_seq"),
        f"{event}_marks": sa.bindparam("_marks"),
    }
    if event == "accepted":
        values["accept_hours"] = sa.bindparam("_hours")
    statement = sa.update(CR).where(CR.c.id == sa.bindparam("_id")).values(values)
    await session.execute(
        statement,
        [
            {"_id": row_id, "_seq": seq, "_marks": marks, "_hours": hours}
            for row_id, seq, marks, hours in rows
        ],
    )


def _feedback(*extra: Any) -> Any:
    return sa.select(
        RF.c.id, RF.c.created_on, CR.c.requester_ref, CR.c.erased_at, CR.c.urgency,
        RF.c.topic, RF.c.ally_id, RF.c.comment_sealed.is_not(None), *extra,
    ).join(CR, CR.c.id == RF.c.request_id)  # fmt: skip


async def pending_feedback(session: AsyncSession, org: str, limit: int) -> list[FeedbackRecord]:
    """Up to ``limit`` request feedback rows not arrived, by day; only they are locked."""
    query = (
        _feedback()
        .where(RF.c.org_id == org, RF.c.seq.is_(None))
        .order_by(RF.c.created_on, RF.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=RF)
    )
    return [FeedbackRecord(*found) for found in (await session.execute(query)).all()]


async def arrived_feedback(
    session: AsyncSession, org: str, span: tuple[date, date], persons: set[str]
) -> list[tuple[FeedbackRecord, int]]:
    """Arrived feedback given in ``span``, with its marks: of ``persons`` (requester
    references), of unknown persons, or absorbed."""
    who = sa.or_(CR.c.requester_ref.in_(sorted(persons)), CR.c.erased_at.is_not(None))
    query = _feedback(RF.c.marks).where(
        RF.c.org_id == org,
        RF.c.created_on >= span[0],
        RF.c.created_on < span[1],
        RF.c.seq.is_not(None),
        sa.or_(who, _absorbed_in(RF.c.marks)),
    )
    return [
        (FeedbackRecord(*found[:-1]), found[-1]) for found in (await session.execute(query)).all()
    ]


async def pending_programme(session: AsyncSession, org: str, limit: int) -> list[ProgrammeRecord]:
    """Up to ``limit`` programme answers not arrived, by day."""
    query = (
        sa.select(PF.c.id, PF.c.created_on, PF.c.category, PF.c.comment_sealed.is_not(None))
        .where(PF.c.org_id == org, PF.c.seq.is_(None))
        .order_by(PF.c.created_on, PF.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [ProgrammeRecord(*found) for found in (await session.execute(query)).all()]


async def store_feedback_arrivals(
    session: AsyncSession, rows: Iterable[tuple[uuid.UUID, int, int]]
) -> None:
    """Write ``(id, seq, marks)`` of each request feedback row."""
    await _store_seq(session, RF, rows)


async def store_programme_arrivals(
    session: AsyncSession, rows: Iterable[tuple[uuid.UUID, int, int]]
) -> None:
    """Write ``(id, seq, marks)`` of each programme answer."""
    await _store_seq(session, PF, rows)


async def _store_seq(
    session: AsyncSession, table: sa.Table, rows: Iterable[tuple[uuid.UUID, int, int]]
) -> None:
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values(seq=sa.bindparam("_seq"), marks=sa.bindparam("_marks"))
    )
    await session.execute(
        statement, [{"_id": row_id, "_seq": seq, "_marks": marks} for row_id, seq, marks in rows]
    )
