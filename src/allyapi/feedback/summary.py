"""Feedback summaries under k-anonymity (docs/aggregates.md).

Ranges are snapped outward to whole calendar months (aggregates/buckets.py). The unit of
release is a *cell*: request feedback of one ally in one month, or programme feedback of one
category in one month. A cell shows the feedback of its first ⌊n/k⌋·k people in the order
they arrived (aggregates/release.py), n being its distinct people so far: distinct
requesters for request feedback, one answer per person for programme feedback (the monthly
quota). So a cell appears when k people are in it and then moves only in steps of k; a
summary is a sum of whole released cells (the programme's is every ally's; a total is its
categories'), and any difference between two summaries — two reads a day apart,
overlapping ranges, an ally's summary against the programme's, a category against the
total — is itself made of whole steps of ≥ k people and cannot single anyone out.
A figure built from no released cell is ``null`` with ``suppressed: true``.

Comments are released the same way in steps of ``k_comments`` commenters per cell. A comment
destroyed after its release (the request was erased, or reached retention) takes its whole
step of k_comments comments with it: showing the rest would tell which one disappeared, and
the ally knows whose request was erased or closed when. Comments are returned without dates,
at most 200 (a random sample), in an order shuffled by ``secrets.SystemRandom``.
"""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import Interval, next_bucket, snap
from allyapi.aggregates.release import chunk_of
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import Settings
from allyapi.feedback.models import FeedbackCategory, ProgramFeedback, RequestFeedback
from allyapi.feedback.repository import CommentRow, FeedbackRepository, ProgramCell, RequestCell
from allyapi.feedback.schemas import (
    MAX_COMMENTS,
    CategorySummary,
    Comments,
    FeedbackSummary,
    ProgramFeedbackSummary,
    RequestFeedbackSummary,
)
from allyapi.reports.anonymity import Measure, figure

_random = secrets.SystemRandom()


def _ratio(part: int, whole: int, digits: int) -> float | None:
    return round(part / whole, digits) if whole else None


def whole_steps(rows: Sequence[CommentRow], k_comments: int) -> list[uuid.UUID]:
    """The comments of every released step whose comments all still exist."""
    steps: dict[tuple[tuple[date, str], int], list[CommentRow]] = defaultdict(list)
    for row in rows:
        steps[(row.cell, chunk_of(row.rank, row.is_first, k_comments))].append(row)
    return [
        row.id
        for members in steps.values()
        if all(member.has_comment for member in members)
        for row in members
    ]


@dataclass(frozen=True)
class SummaryScope:
    org: str
    # None: the whole programme (coordinators only).
    ally_id: uuid.UUID | None


class SummaryService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.repo = FeedbackRepository(session)
        self.cipher = Cipher(settings.data_key_ring)
        self.k = settings.k_anonymity
        self.k_comments = settings.k_comments

    async def summary(self, scope: SummaryScope, first: date, last: date) -> FeedbackSummary:
        months = snap(first, last, Interval.month)
        start, end = months[0], next_bucket(months[-1], Interval.month)
        programme = None
        if scope.ally_id is None:
            programme = await self._programme(scope.org, start, end)
        return FeedbackSummary(
            scope="programme" if scope.ally_id is None else "ally",
            ally_id=scope.ally_id,
            starts_on=start,
            ends_on=date.fromordinal(end.toordinal() - 1),
            requests=await self._requests(scope, start, end),
            programme=programme,
        )

    async def _requests(
        self, scope: SummaryScope, start: date, end: date
    ) -> RequestFeedbackSummary:
        used: list[RequestCell] = await self.repo.request_cells(
            scope.org, scope.ally_id, start, end, self.k
        )
        people = sum(cell.requesters for cell in used)
        answers = sum(cell.responses for cell in used)

        def measure(value: float | None) -> Measure:
            return Measure(value=value, population=people)

        rows = await self.repo.request_comment_rows(
            scope.org, scope.ally_id, start, end, self.k, self.k_comments
        )
        return RequestFeedbackSummary(
            responses=figure(measure(answers), self.k),
            rating_average=figure(
                measure(_ratio(sum(c.rating_sum for c in used), answers, 2)), self.k
            ),
            felt_heard_rate=figure(
                measure(_ratio(sum(c.felt_heard for c in used), answers, 3)), self.k
            ),
            would_recommend_rate=figure(
                measure(_ratio(sum(c.would_recommend for c in used), answers, 3)), self.k
            ),
            comments=await self._comments(RequestFeedback, scope.org, rows),
        )

    async def _programme(self, org: str, start: date, end: date) -> ProgramFeedbackSummary:
        used = await self.repo.program_cells(org, start, end, self.k)
        categories = [
            self._category(category, [c for c in used if c.category == category])
            for category in FeedbackCategory
        ]
        answers = sum(cell.responses for cell in used)
        rating = _ratio(sum(cell.rating_sum for cell in used), answers, 2)
        rows = await self.repo.program_comment_rows(org, start, end, self.k, self.k_comments)
        return ProgramFeedbackSummary(
            responses=figure(Measure(answers, answers), self.k),
            rating_average=figure(Measure(rating, answers), self.k),
            categories=categories,
            comments=await self._comments(ProgramFeedback, org, rows),
        )

    def _category(self, category: FeedbackCategory, used: list[ProgramCell]) -> CategorySummary:
        answers = sum(cell.responses for cell in used)
        rating = _ratio(sum(cell.rating_sum for cell in used), answers, 2)
        return CategorySummary(
            category=category,
            responses=figure(Measure(answers, answers), self.k),
            rating_average=figure(Measure(rating, answers), self.k),
        )

    async def _comments(
        self,
        model: type[RequestFeedback] | type[ProgramFeedback],
        org: str,
        rows: Sequence[CommentRow],
    ) -> Comments:
        ids = whole_steps(rows, self.k_comments)
        if not ids:
            return Comments(suppressed=True)
        chosen = _random.sample(ids, min(len(ids), MAX_COMMENTS))
        table = model.__tablename__
        found = await self.repo.sealed_comments(model, org, chosen)
        texts = [
            self.cipher.open(sealed, aad_for(table, row_id, "comment")) for row_id, sealed in found
        ]
        _random.shuffle(texts)
        return Comments(suppressed=False, items=texts)
