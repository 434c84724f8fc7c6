"""Feedback summaries under k-anonymity (SPEC §3 Feedback, P6).

Ranges are snapped outward to whole calendar months (reports/buckets.py). The unit of
suppression is a *cell*: request feedback of one ally in one month, or programme feedback of
one category in one month. A cell is used only when it holds at least ``k`` people (distinct
requesters through the request row for request feedback; rows for programme feedback, which
by design has no person to count — the weekly per-person quota bounds how many rows one
person can add). Every figure is then a sum of whole cells, so any difference between two
summaries — overlapping ranges, an ally's summary against the programme's, a category against
the total — is itself a sum of whole cells of ≥ k people and cannot single anyone out.
A figure built from no cell at all is ``null`` with ``suppressed: true``.

Comments come only from used cells and only when those cells hold ≥ ``k_comments``
respondents in all (summed over cells: a person counted in two cells counts twice, but each
cell alone already holds ≥ k distinct people). They are returned without dates, at most 200
(a random sample), in an order shuffled by ``secrets.SystemRandom``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.crypto import Cipher, aad_for
from allyapi.core.settings import Settings
from allyapi.feedback.deps import SummaryScope
from allyapi.feedback.models import FeedbackCategory, ProgramFeedback, RequestFeedback
from allyapi.feedback.repository import FeedbackRepository, ProgramCell, RequestCell
from allyapi.feedback.schemas import (
    MAX_COMMENTS,
    CategorySummary,
    Comments,
    FeedbackSummary,
    ProgramFeedbackSummary,
    RequestFeedbackSummary,
)
from allyapi.reports.anonymity import Measure, figure
from allyapi.reports.buckets import Interval, bucket_start, next_bucket, snap

_random = secrets.SystemRandom()


def _ratio(part: int, whole: int, digits: int) -> float | None:
    return round(part / whole, digits) if whole else None


class SummaryService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.repo = FeedbackRepository(session)
        self.cipher = Cipher(settings.data_key_ring)
        self.k = settings.k_anonymity
        self.k_comments = settings.k_comments

    async def summary(self, scope: SummaryScope, first: date, last: date) -> FeedbackSummary:
        months = snap(first, last, Interval.month)
        start, end = months[0], next_bucket(months[-1], Interval.month)
        cells = await self.repo.request_cells(scope.org, scope.ally_id, start, end)
        used = [cell for cell in cells if cell.requesters >= self.k]
        requests = await self._requests(scope, used, start, end)
        programme = None
        if scope.ally_id is None:
            programme = await self._programme(scope.org, start, end)
        return FeedbackSummary(
            scope="programme" if scope.ally_id is None else "ally",
            ally_id=scope.ally_id,
            starts_on=start,
            ends_on=date.fromordinal(end.toordinal() - 1),
            requests=requests,
            programme=programme,
        )

    async def _requests(
        self, scope: SummaryScope, used: list[RequestCell], start: date, end: date
    ) -> RequestFeedbackSummary:
        people = sum(cell.requesters for cell in used)
        answers = sum(cell.responses for cell in used)

        def measure(value: float | None) -> Measure:
            return Measure(value=value, population=people)

        keys = {(cell.ally_id, cell.month) for cell in used}
        comments = Comments(suppressed=True)
        if people >= self.k_comments:
            candidates = await self.repo.request_comment_keys(scope.org, scope.ally_id, start, end)
            ids = [
                row_id
                for row_id, ally_id, day in candidates
                if (ally_id, bucket_start(day, Interval.month)) in keys
            ]
            comments = await self._comments(RequestFeedback, scope.org, ids)
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
            comments=comments,
        )

    async def _programme(self, org: str, start: date, end: date) -> ProgramFeedbackSummary:
        cells = await self.repo.program_cells(org, start, end)
        used = [cell for cell in cells if cell.responses >= self.k]
        categories = [
            self._category(category, [c for c in used if c.category == category])
            for category in FeedbackCategory
        ]
        answers = sum(cell.responses for cell in used)
        rating = _ratio(sum(cell.rating_sum for cell in used), answers, 2)
        comments = Comments(suppressed=True)
        if answers >= self.k_comments:
            keys = {(cell.category, cell.month) for cell in used}
            candidates = await self.repo.program_comment_keys(org, start, end)
            ids = [
                row_id
                for row_id, category, day in candidates
                if (category, bucket_start(day, Interval.month)) in keys
            ]
            comments = await self._comments(ProgramFeedback, org, ids)
        return ProgramFeedbackSummary(
            responses=figure(Measure(answers, answers), self.k),
            rating_average=figure(Measure(rating, answers), self.k),
            categories=categories,
            comments=comments,
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
        ids: Sequence[uuid.UUID],
    ) -> Comments:
        chosen = _random.sample(list(ids), min(len(ids), MAX_COMMENTS))
        table = model.__tablename__
        rows = await self.repo.sealed_comments(model, org, chosen)
        texts = [
            self.cipher.open(sealed, aad_for(table, row_id, "comment")) for row_id, sealed in rows
        ]
        _random.shuffle(texts)
        return Comments(suppressed=False, items=texts)
