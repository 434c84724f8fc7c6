"""Feedback SQL. Every query is scoped to the caller's org (P8)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, select

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.models import table_of
from allyapi.core.upsert import dialect_insert
from allyapi.feedback.models import FeedbackQuota, ProgramFeedback, RequestFeedback
from allyapi.reports.buckets import Interval, as_date, bucket_of


@dataclass(frozen=True)
class RequestCell:
    """Request feedback of one ally in one month."""

    month: date
    ally_id: uuid.UUID | None
    responses: int
    requesters: int
    rating_sum: int
    felt_heard: int
    would_recommend: int


@dataclass(frozen=True)
class ProgramCell:
    """Programme feedback of one category in one month."""

    month: date
    category: str
    responses: int
    rating_sum: int


class FeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def contact_request(self, org_id: str, request_id: uuid.UUID) -> ContactRequest | None:
        """The request, held ``FOR SHARE`` until the feedback commits.

        An erasure or a retention purge locks the request for update, so it either waits
        for this feedback (and then destroys its comment with the rest) or has committed
        before this read (which then sees the request gone or purged): never a comment that
        outlives the content it belongs to. Concurrent feedbacks share the lock; the unique
        ``request_id`` keeps one of them."""
        query = (
            select(ContactRequest)
            .where(ContactRequest.org_id == org_id, ContactRequest.id == request_id)
            .with_for_update(read=True)
        )
        return (await self.session.execute(query)).scalars().first()

    async def add_once(self, feedback: RequestFeedback) -> bool:
        """Insert; False when the request already has feedback (the unique constraint)."""
        try:
            async with self.session.begin_nested():
                self.session.add(feedback)
        except IntegrityError:
            return False
        return True

    def add_program(self, feedback: ProgramFeedback) -> None:
        self.session.add(feedback)

    @staticmethod
    async def consume_quota(
        connection: AsyncConnection, org_id: str, bucket: str, week: str, limit: int
    ) -> bool:
        """Count one use of this week's bucket; False when ``limit`` is already used.

        One atomic upsert (``INSERT .. ON CONFLICT DO UPDATE .. WHERE used < limit``): two
        processes racing for the last slot cannot both win. ``connection`` is in autocommit:
        the count commits on its own, never in the transaction that stores the feedback, so
        the two rows never share a transaction id (``xmin`` on PostgreSQL), which would pair
        a person's bucket with their anonymous feedback for anyone holding the key.
        """
        dialect = connection.dialect.name
        table = table_of(FeedbackQuota)
        # Quota rows of past weeks limit nothing any more: delete them.
        await connection.execute(
            sa.delete(table).where(table.c.org_id == org_id, table.c.week < week)
        )
        insert = dialect_insert(dialect, table)
        statement = (
            insert.values(org_id=org_id, bucket=bucket, week=week, used=1)
            .on_conflict_do_update(
                index_elements=[table.c.org_id, table.c.bucket],
                set_={"used": table.c.used + 1},
                where=table.c.used < limit,
            )
            .returning(table.c.used)
        )
        return (await connection.execute(statement)).first() is not None

    async def ally_of_subject(self, org_id: str, subject_ref: str) -> uuid.UUID | None:
        query = sa.select(col(Ally.id)).where(
            col(Ally.org_id) == org_id, col(Ally.subject_ref) == subject_ref
        )
        return (await self.session.execute(query)).scalar()

    async def ally_exists(self, org_id: str, ally_id: uuid.UUID) -> bool:
        query = sa.select(col(Ally.id)).where(col(Ally.org_id) == org_id, col(Ally.id) == ally_id)
        return (await self.session.execute(query)).scalar() is not None

    async def request_cells(
        self, org_id: str, ally_id: uuid.UUID | None, first: date, end: date
    ) -> list[RequestCell]:
        """Per (month, ally): responses, distinct requesters (through the request), sums."""
        month = bucket_of(col(RequestFeedback.created_on), Interval.month, self.dialect)
        query = (
            sa.select(
                month.label("month"),
                col(RequestFeedback.ally_id),
                sa.func.count().label("responses"),
                sa.func.count(sa.distinct(col(ContactRequest.requester_ref))),
                sa.func.sum(col(RequestFeedback.rating)),
                sa.func.sum(sa.cast(col(RequestFeedback.felt_heard), sa.Integer)),
                sa.func.sum(sa.cast(col(RequestFeedback.would_recommend), sa.Integer)),
            )
            .join(ContactRequest, col(ContactRequest.id) == col(RequestFeedback.request_id))
            .where(*self._range(RequestFeedback, org_id, first, end))
            .group_by(sa.text("1"), col(RequestFeedback.ally_id))
        )
        if ally_id is not None:
            query = query.where(col(RequestFeedback.ally_id) == ally_id)
        rows = (await self.session.execute(query)).all()
        return [
            RequestCell(as_date(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]))
            for r in rows
        ]

    async def program_cells(self, org_id: str, first: date, end: date) -> list[ProgramCell]:
        month = bucket_of(col(ProgramFeedback.created_on), Interval.month, self.dialect)
        query = (
            sa.select(
                month.label("month"),
                col(ProgramFeedback.category),
                sa.func.count(),
                sa.func.sum(col(ProgramFeedback.rating)),
            )
            .where(*self._range(ProgramFeedback, org_id, first, end))
            .group_by(sa.text("1"), col(ProgramFeedback.category))
        )
        rows = (await self.session.execute(query)).all()
        return [ProgramCell(as_date(r[0]), r[1], r[2], int(r[3])) for r in rows]

    async def request_comment_keys(
        self, org_id: str, ally_id: uuid.UUID | None, first: date, end: date
    ) -> Sequence[tuple[uuid.UUID, uuid.UUID | None, date]]:
        """(id, ally, day) of feedback with a comment; the caller keeps those of shown cells."""
        query = sa.select(
            col(RequestFeedback.id), col(RequestFeedback.ally_id), col(RequestFeedback.created_on)
        ).where(
            *self._range(RequestFeedback, org_id, first, end),
            col(RequestFeedback.comment_sealed).is_not(None),
        )
        if ally_id is not None:
            query = query.where(col(RequestFeedback.ally_id) == ally_id)
        return [(r[0], r[1], r[2]) for r in (await self.session.execute(query)).all()]

    async def program_comment_keys(
        self, org_id: str, first: date, end: date
    ) -> Sequence[tuple[uuid.UUID, str, date]]:
        query = sa.select(
            col(ProgramFeedback.id), col(ProgramFeedback.category), col(ProgramFeedback.created_on)
        ).where(
            *self._range(ProgramFeedback, org_id, first, end),
            col(ProgramFeedback.comment_sealed).is_not(None),
        )
        return [(r[0], r[1], r[2]) for r in (await self.session.execute(query)).all()]

    async def sealed_comments(
        self,
        model: type[RequestFeedback] | type[ProgramFeedback],
        org_id: str,
        ids: list[uuid.UUID],
    ) -> Sequence[tuple[uuid.UUID, str]]:
        query = sa.select(col(model.id), col(model.comment_sealed)).where(
            col(model.org_id) == org_id, col(model.id).in_(ids)
        )
        rows = (await self.session.execute(query)).all()
        return [(r[0], r[1]) for r in rows if r[1] is not None]

    @staticmethod
    def _range(
        model: type[RequestFeedback] | type[ProgramFeedback], org_id: str, first: date, end: date
    ) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            col(model.org_id) == org_id,
            col(model.created_on) >= first,
            col(model.created_on) < end,
        )
