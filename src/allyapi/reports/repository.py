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


def _request_measures(row: Any, median: Any) -> dict[str, Measure]:
    return {
        "requests_created": Measure(row[0], row[1]),
        "requests_accepted": Measure(row[2], row[3]),
        "requests_completed": Measure(row[4], row[5]),
        "median_hours_to_accept": Measure(
            None if median is None else round(float(median), 1), row[3]
        ),
        "signposting_rate": Measure(_ratio(row[6], row[7], 3), row[8]),
        "ally_wellbeing_average": Measure(
            None if row[9] is None else round(float(row[9]), 2), row[10]
        ),
    }


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

    async def load_topics(self, org: str) -> list[str]:
        """The topics the org's allies offer (public profile data), sorted.

        Only these get a group of their own; any other topic a request names is counted under
        ``(other)``. The list never depends on the report's range or on what requesters
        asked, so a rare topic's name never appears because one person asked about it, and
        two queries over different ranges group rows identically (no differencing between
        an ``(other)`` cell that holds a topic and one that does not).
        """
        query = sa.select(col(Ally.topics)).where(col(Ally.org_id) == org)
        offered = {
            topic.lower()
            for topics in (await self.session.execute(query)).scalars().all()
            for topic in topics or ()
            if isinstance(topic, str)
        }
        self.topics = sorted(offered)[:MAX_TOPIC_GROUPS]
        return self.topics

    async def _grouped(
        self, base: Any, aggregates: list[Any], group_by: GroupBy | None
    ) -> list[tuple[Key, Any]]:
        """Aggregate ``base`` per bucket (the period totals) and, with a breakdown, per
        (bucket, group) too: one pass with ``GROUPING SETS`` on PostgreSQL, two on SQLite."""
        bucket, group = base.c.bucket, base.c.grp
        totals = sa.select(bucket, *aggregates).group_by(bucket)
        if group_by is None:
            return [((as_date(r[0]), None), r[1:]) for r in await self._all(totals)]
        if self.dialect == "postgresql":
            query = sa.select(bucket, group, sa.func.grouping(group), *aggregates).group_by(
                sa.func.grouping_sets(sa.tuple_(bucket, group), sa.tuple_(bucket))
            )
            return [
                ((as_date(r[0]), None if r[2] else r[1]), r[3:]) for r in await self._all(query)
            ]
        per_group = sa.select(bucket, group, *aggregates).group_by(bucket, group)
        return [((as_date(r[0]), None), r[1:]) for r in await self._all(totals)] + [
            ((as_date(r[0]), r[1]), r[2:]) for r in await self._all(per_group)
        ]

    async def _all(self, query: Any) -> list[Any]:
        return list((await self.session.execute(query)).all())

    def _request_base(
        self, org: str, start: date, end: date, interval: Interval, group_by: GroupBy | None
    ) -> Any:
        hours = (
            sa.extract("epoch", col(CR.accepted_at) - col(CR.created_at)) / 3600.0
            if self.dialect == "postgresql"
            else sa.null()
        )
        return (
            sa.select(
                bucket_of(col(CR.created_at), interval, self.dialect).label("bucket"),
                self._group_column(group_by).label("grp"),
                col(CR.requester_ref).label("who"),
                col(CR.accepted_at),
                col(CR.status),
                col(CR.signposted),
                col(CR.wellbeing),
                col(CR.ally_id),
                hours.label("hours"),
            )
            .where(*self._range(org, start, end))
            .subquery()
        )

    async def requests(
        self, org: str, start: date, end: date, interval: Interval, group_by: GroupBy | None
    ) -> Cells:
        """Per bucket (and group) of the requests *created* in it. Totals: group None."""
        postgres = self.dialect == "postgresql"
        base = self._request_base(org, start, end, interval, group_by)
        c = base.c
        completed = c.status == RequestStatus.completed
        aggregates: list[Any] = [
            sa.func.count(),
            sa.func.count(sa.distinct(c.who)),
            sa.func.count(c.accepted_at),
            sa.func.count(sa.distinct(_when(c.accepted_at.is_not(None), c.who))),
            sa.func.count(_when(completed, 1)),
            sa.func.count(sa.distinct(_when(completed, c.who))),
            sa.func.count(_when(c.signposted.is_(True), 1)),
            sa.func.count(c.signposted),
            sa.func.count(sa.distinct(_when(c.signposted.is_not(None), c.who))),
            sa.func.avg(c.wellbeing),
            sa.func.count(sa.distinct(_when(c.wellbeing.is_not(None), c.ally_id))),
        ]
        if postgres:
            aggregates.append(sa.func.percentile_cont(0.5).within_group(c.hours))
        rows = await self._grouped(base, aggregates, group_by)
        medians = (
            {} if postgres else await self._medians_in_python(org, start, end, interval, group_by)
        )
        return {
            key: _request_measures(row, row[11] if postgres else medians.get(key))
            for key, row in rows
        }

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
        for row in await self._all(query):
            day = as_date(row[0])
            values[(day, None)].append(float(row[2]))
            if group_by is not None:
                values[(day, row[1])].append(float(row[2]))
        return {key: statistics.median(found) for key, found in values.items()}

    async def feedback(
        self, org: str, start: date, end: date, interval: Interval, group_by: GroupBy | None
    ) -> Cells:
        """Feedback *given* in each period, grouped by the request's topic/urgency."""
        base = (
            sa.select(
                bucket_of(col(RequestFeedback.created_on), interval, self.dialect).label("bucket"),
                self._group_column(group_by).label("grp"),
                col(CR.requester_ref).label("who"),
                col(RequestFeedback.rating),
                sa.cast(col(RequestFeedback.felt_heard), sa.Integer).label("heard"),
                sa.cast(col(RequestFeedback.would_recommend), sa.Integer).label("recommend"),
            )
            .join(CR, col(CR.id) == col(RequestFeedback.request_id))
            .where(
                col(RequestFeedback.org_id) == org,
                col(RequestFeedback.created_on) >= start,
                col(RequestFeedback.created_on) < end,
            )
            .subquery()
        )
        c = base.c
        aggregates = [
            sa.func.count(),
            sa.func.count(sa.distinct(c.who)),
            sa.func.sum(c.rating),
            sa.func.sum(c.heard),
            sa.func.sum(c.recommend),
        ]
        cells: Cells = {}
        for key, row in await self._grouped(base, aggregates, group_by):
            answers, people = row[0], row[1]
            cells[key] = {
                "feedback_rating_average": Measure(_ratio(row[2], answers, 2), people),
                "feedback_felt_heard_rate": Measure(_ratio(row[3], answers, 3), people),
                "feedback_would_recommend_rate": Measure(_ratio(row[4], answers, 3), people),
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
