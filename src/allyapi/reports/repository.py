"""Report SQL: everything is a ``GROUP BY`` over (period bucket[, group]) in the database.

Each aggregate comes with its *population* — the distinct requesters (distinct allies for
wellbeing) it is computed from — so the service can apply P6 without seeing a single row.

Median hours to accept: ``percentile_cont(0.5) WITHIN GROUP`` on PostgreSQL, inside the same
grouped query. SQLite has no ordered-set aggregates, so there the accepted requests' hours
are fetched (bucket, group, hours only) and the median is taken in Python per bucket; SQLite
is the embedded, small-installation database, where that is cheap.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.listing import listed_clause, missing_required_training
from allyapi.allies.models import Ally, AllyStatus
from allyapi.contact_requests.models import ContactRequest, RequestStatus
from allyapi.feedback.models import RequestFeedback
from allyapi.reports.anonymity import Measure
from allyapi.reports.buckets import Interval, as_date, as_instant, bucket_of
from allyapi.reports.schemas import GroupBy

Key = tuple[date, str | None]
Cells = dict[Key, dict[str, Measure]]

CR = ContactRequest
OTHER_TOPICS = "(other)"
MAX_TOPIC_GROUPS = 100


def _when(condition: Any, value: Any) -> Any:
    return sa.case((condition, value), else_=None)


def _ratio(part: Any, whole: Any, digits: int) -> float | None:
    return round(float(part) / float(whole), digits) if whole else None


class ReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

        # Topics that have their own group; the others are folded into OTHER_TOPICS.
        self.topics: list[str] = []

    def _group_column(self, group_by: GroupBy | None) -> Any:
        if group_by is None:
            return sa.literal_column("NULL")
        if group_by is GroupBy.urgency:
            return col(CR.urgency)
        if not self.topics:
            return sa.literal(OTHER_TOPICS)
        return sa.case((col(CR.topic).in_(self.topics), col(CR.topic)), else_=OTHER_TOPICS)

    async def load_topics(self, org: str, start: date, end: date, k: int) -> list[str]:
        """Topics asked about by ≥ k distinct requesters over the whole range.

        Only those get a group of their own, so a topic's name never appears in a report
        because one or two people asked about it; the rest are counted under ``(other)``.
        """
        query = (
            sa.select(col(CR.topic))
            .where(*self._range(org, start, end))
            .group_by(col(CR.topic))
            .having(sa.func.count(sa.distinct(col(CR.requester_ref))) >= k)
            .order_by(col(CR.topic))
            .limit(MAX_TOPIC_GROUPS)
        )
        self.topics = list((await self.session.execute(query)).scalars().all())
        return self.topics

    async def requests(
        self, org: str, start: date, end: date, interval: Interval, group_by: GroupBy | None
    ) -> Cells:
        bucket = bucket_of(col(CR.created_at), interval, self.dialect)
        group = self._group_column(group_by)
        who = col(CR.requester_ref)
        accepted = col(CR.accepted_at).is_not(None)
        completed = col(CR.status) == RequestStatus.completed
        debriefed = col(CR.signposted).is_not(None)
        columns = [
            bucket.label("bucket"),
            group.label("grp"),
            sa.func.count(),
            sa.func.count(sa.distinct(who)),
            sa.func.count(col(CR.accepted_at)),
            sa.func.count(sa.distinct(_when(accepted, who))),
            sa.func.count(_when(completed, 1)),
            sa.func.count(sa.distinct(_when(completed, who))),
            sa.func.count(_when(col(CR.signposted).is_(True), 1)),
            sa.func.count(col(CR.signposted)),
            sa.func.count(sa.distinct(_when(debriefed, who))),
            sa.func.avg(col(CR.wellbeing)),
            sa.func.count(sa.distinct(_when(col(CR.wellbeing).is_not(None), col(CR.ally_id)))),
        ]
        if self.dialect == "postgresql":
            hours = sa.extract("epoch", col(CR.accepted_at) - col(CR.created_at)) / 3600.0
            columns.append(sa.func.percentile_cont(0.5).within_group(hours))
        query = (
            sa.select(*columns)
            .where(*self._range(org, start, end))
            .group_by(sa.text("1"), sa.text("2"))
        )
        rows = (await self.session.execute(query)).all()
        medians = (
            {}
            if self.dialect == "postgresql"
            else await self._medians_in_python(org, start, end, interval, group_by)
        )
        cells: Cells = {}
        for row in rows:
            key = (as_date(row[0]), row[1])
            median = row[13] if self.dialect == "postgresql" else medians.get(key)
            cells[key] = {
                "requests_created": Measure(row[2], row[3]),
                "requests_accepted": Measure(row[4], row[5]),
                "requests_completed": Measure(row[6], row[7]),
                "median_hours_to_accept": Measure(
                    None if median is None else round(float(median), 1), row[5]
                ),
                "signposting_rate": Measure(_ratio(row[8], row[9], 3), row[10]),
                "ally_wellbeing_average": Measure(
                    None if row[11] is None else round(float(row[11]), 2), row[12]
                ),
            }
        return cells

    async def _medians_in_python(
        self, org: str, start: date, end: date, interval: Interval, group_by: GroupBy | None
    ) -> dict[Key, float]:
        bucket = bucket_of(col(CR.created_at), interval, self.dialect)
        hours = (
            sa.func.julianday(col(CR.accepted_at)) - sa.func.julianday(col(CR.created_at))
        ) * 24.0
        query = sa.select(bucket, self._group_column(group_by), hours).where(
            *self._range(org, start, end), col(CR.accepted_at).is_not(None)
        )
        values: dict[Key, list[float]] = defaultdict(list)
        for row in (await self.session.execute(query)).all():
            values[(as_date(row[0]), row[1])].append(float(row[2]))
        return {key: statistics.median(found) for key, found in values.items()}

    async def feedback(
        self, org: str, start: date, end: date, interval: Interval, group_by: GroupBy | None
    ) -> Cells:
        """Feedback given in each period; grouped by the request's topic/urgency."""
        bucket = bucket_of(col(RequestFeedback.created_on), interval, self.dialect)
        query = (
            sa.select(
                bucket.label("bucket"),
                self._group_column(group_by).label("grp"),
                sa.func.count(),
                sa.func.count(sa.distinct(col(CR.requester_ref))),
                sa.func.sum(col(RequestFeedback.rating)),
                sa.func.sum(sa.cast(col(RequestFeedback.felt_heard), sa.Integer)),
                sa.func.sum(sa.cast(col(RequestFeedback.would_recommend), sa.Integer)),
            )
            .join(CR, col(CR.id) == col(RequestFeedback.request_id))
            .where(
                col(RequestFeedback.org_id) == org,
                col(RequestFeedback.created_on) >= start,
                col(RequestFeedback.created_on) < end,
            )
            .group_by(sa.text("1"), sa.text("2"))
        )
        cells: Cells = {}
        for row in (await self.session.execute(query)).all():
            answers, people = row[2], row[3]
            cells[(as_date(row[0]), row[1])] = {
                "feedback_rating_average": Measure(_ratio(row[4], answers, 2), people),
                "feedback_felt_heard_rate": Measure(_ratio(row[5], answers, 3), people),
                "feedback_would_recommend_rate": Measure(_ratio(row[6], answers, 3), people),
            }
        return cells

    async def network_today(self, org: str, today: date) -> tuple[int, int, int]:
        """(listed allies, active allies, active allies holding every required course)."""
        active = col(Ally.status) == AllyStatus.active
        query = sa.select(
            sa.func.count(_when(listed_clause(today), 1)),
            sa.func.count(_when(active, 1)),
            sa.func.count(_when(sa.and_(active, ~missing_required_training(today)), 1)),
        ).where(col(Ally.org_id) == org)
        row = (await self.session.execute(query)).one()
        return int(row[0]), int(row[1]), int(row[2])

    @staticmethod
    def _range(org: str, start: date, end: date) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            col(CR.org_id) == org,
            col(CR.created_at) >= as_instant(start),
            col(CR.created_at) < as_instant(end),
        )
