"""Feedback SQL. Every query is scoped to the caller's org (docs/privacy.md, P8)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, select

from allyapi.aggregates.buckets import Interval, as_date, bucket_of
from allyapi.aggregates.marks import COMMENTED, Kind
from allyapi.aggregates.release import Level
from allyapi.aggregates.release_repository import released
from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.db.models import table_of
from allyapi.core.db.upsert import dialect_insert
from allyapi.feedback.models import FeedbackQuota, ProgramFeedback, RequestFeedback

RF = table_of(RequestFeedback)
PF = table_of(ProgramFeedback)


@dataclass(frozen=True)
class RequestCell:
    """What the release rule shows of one ally's request feedback in one month."""

    month: date
    ally_id: uuid.UUID | None
    responses: int
    requesters: int
    rating_sum: int
    felt_heard: int
    would_recommend: int


@dataclass(frozen=True)
class ProgramCell:
    """What the release rule shows of one category's programme feedback in one month."""

    month: date
    category: str
    responses: int
    rating_sum: int


@dataclass(frozen=True)
class CommentRow:
    """A released commented row: its cell, the step of k_comments that released it, and
    whether its comment still exists (erasure and retention destroy comments)."""

    id: uuid.UUID
    cell: tuple[date, str]
    rank: int
    is_first: bool
    has_comment: bool


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
        connection: AsyncConnection, org_id: str, bucket: str, period: str, limit: int
    ) -> bool:
        """Count one use of this period's bucket; False when ``limit`` is already used.

        One atomic upsert (``INSERT .. ON CONFLICT DO UPDATE .. WHERE used < limit``): two
        processes racing for the last slot cannot both win. ``connection`` is in autocommit:
        the count commits on its own, never in the transaction that stores the feedback, so
        the two rows never share a transaction id (``xmin`` on PostgreSQL), which would pair
        a person's bucket with their anonymous feedback for anyone holding the key.
        """
        dialect = connection.dialect.name
        table = table_of(FeedbackQuota)
        # Quota rows of past periods limit nothing any more: delete them.
        await connection.execute(
            sa.delete(table).where(table.c.org_id == org_id, table.c.period < period)
        )
        insert = dialect_insert(dialect, table)
        statement = (
            insert.values(org_id=org_id, bucket=bucket, period=period, used=1)
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

    def _request_rows(self, org_id: str, ally_id: uuid.UUID | None, first: date, end: date) -> Any:
        """Arrived request feedback of the months, of one ally or all of them."""
        month = bucket_of(RF.c.created_on, Interval.month, self.dialect)
        query = sa.select(
            RF.c.id,
            month.label("bucket"),
            RF.c.ally_id,
            RF.c.seq,
            RF.c.marks,
            RF.c.rating,
            sa.cast(RF.c.felt_heard, sa.Integer).label("heard"),
            sa.cast(RF.c.would_recommend, sa.Integer).label("recommend"),
            RF.c.comment_sealed.is_not(None).label("has_comment"),
        ).where(
            RF.c.org_id == org_id,
            RF.c.created_on >= first,
            RF.c.created_on < end,
            RF.c.seq.is_not(None),
        )
        if ally_id is not None:
            query = query.where(RF.c.ally_id == ally_id)
        return query.subquery()

    async def request_cells(
        self, org_id: str, ally_id: uuid.UUID | None, first: date, end: date, k: int
    ) -> list[RequestCell]:
        """Per (month, ally): the feedback the release rule shows."""
        rows = released(
            self._request_rows(org_id, ally_id, first, end),
            Level(("bucket", "ally_id"), Kind.month_ally, k),
        )
        c = rows.c
        query = sa.select(
            c.bucket,
            c.ally_id,
            sa.func.max(c.outer_step),
            sa.func.count(),
            sa.func.sum(c.rating),
            sa.func.sum(c.heard),
            sa.func.sum(c.recommend),
        ).group_by(c.bucket, c.ally_id)
        found = (await self.session.execute(query)).all()
        return [
            RequestCell(as_date(r[0]), r[1], int(r[3]), int(r[2]), int(r[4]), int(r[5]), int(r[6]))
            for r in found
        ]

    async def request_comment_rows(
        self,
        org_id: str,
        ally_id: uuid.UUID | None,
        first: date,
        end: date,
        k: int,
        k_comments: int,
    ) -> list[CommentRow]:
        """Commented rows the release rule shows, with their step (comments: k_comments,
        among the rows whose ratings are shown)."""
        cell = ("bucket", "ally_id")
        rows = released(
            self._request_rows(org_id, ally_id, first, end),
            Level(cell, Kind.month_ally, k),
            Level(cell, Kind.month_ally_comments, k_comments),
        )
        c = rows.c
        query = sa.select(
            c.id, c.bucket, c.ally_id, c.inner_rank, c.inner_first, c.has_comment
        ).where(c.inner_in == 1, c.marks.op("&")(COMMENTED) != 0)
        return [
            CommentRow(r[0], (as_date(r[1]), str(r[2])), int(r[3]), bool(r[4]), bool(r[5]))
            for r in (await self.session.execute(query)).all()
        ]

    def _program_rows(self, org_id: str, first: date, end: date) -> Any:
        month = bucket_of(PF.c.created_on, Interval.month, self.dialect)
        return (
            sa.select(
                PF.c.id,
                month.label("bucket"),
                PF.c.category,
                PF.c.seq,
                PF.c.marks,
                PF.c.rating,
                PF.c.comment_sealed.is_not(None).label("has_comment"),
            )
            .where(
                PF.c.org_id == org_id,
                PF.c.created_on >= first,
                PF.c.created_on < end,
                PF.c.seq.is_not(None),
            )
            .subquery()
        )

    async def program_cells(self, org_id: str, first: date, end: date, k: int) -> list[ProgramCell]:
        """Per (month, category): the answers the release rule shows (each is one person)."""
        rows = released(
            self._program_rows(org_id, first, end),
            Level(("bucket", "category"), Kind.month_category, k),
        )
        c = rows.c
        query = sa.select(c.bucket, c.category, sa.func.count(), sa.func.sum(c.rating)).group_by(
            c.bucket, c.category
        )
        found = (await self.session.execute(query)).all()
        return [ProgramCell(as_date(r[0]), r[1], int(r[2]), int(r[3])) for r in found]

    async def program_comment_rows(
        self, org_id: str, first: date, end: date, k: int, k_comments: int
    ) -> list[CommentRow]:
        level = ("bucket", "category")
        rows = released(
            self._program_rows(org_id, first, end),
            Level(level, Kind.month_category, k),
            Level(level, Kind.month_category_comments, k_comments),
        )
        c = rows.c
        query = sa.select(
            c.id, c.bucket, c.category, c.inner_rank, c.inner_first, c.has_comment
        ).where(c.inner_in == 1, c.marks.op("&")(COMMENTED) != 0)
        return [
            CommentRow(r[0], (as_date(r[1]), str(r[2])), int(r[3]), bool(r[4]), bool(r[5]))
            for r in (await self.session.execute(query)).all()
        ]

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


async def feedback_of_requests(
    session: AsyncSession, request_ids: list[uuid.UUID]
) -> dict[uuid.UUID, RequestFeedback]:
    """The feedback given on each of ``request_ids`` (the right-of-access export)."""
    query = select(RequestFeedback).where(col(RequestFeedback.request_id).in_(request_ids))
    return {row.request_id: row for row in (await session.execute(query)).scalars()}
