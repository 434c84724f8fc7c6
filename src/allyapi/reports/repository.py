"""Report SQL: released rows (aggregates/release.py) aggregated per period [and group].

Each figure comes from one *source* of contributions, each with its own arrival order and
people (aggregates/sources.py): requests created, accepted (count, median hours to accept),
completed (count, signposting), allies' wellbeing debriefs (people are allies), feedback
given. Per source one statement ranks the rows of the range in arrival order per cell,
keeps those the release rule shows, and aggregates them per period and, with a breakdown,
per (period, group) in the same pass (``GROUPING SETS`` on PostgreSQL; two statements on
SQLite). Every aggregate comes with its *population*: the people released.

Median hours to accept: ``percentile_cont(0.5) WITHIN GROUP`` on PostgreSQL. SQLite has no
ordered-set aggregates, so there the released rows' hours are fetched (period, group, hours
only) and the median is taken in Python; SQLite is the embedded, small-installation
database, where that is cheap.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.aggregates.buckets import Interval, as_date, as_instant, bucket_of
from allyapi.aggregates.calendar import TopicCalendar
from allyapi.aggregates.marks import Kind
from allyapi.aggregates.release import Level
from allyapi.aggregates.release_repository import released
from allyapi.aggregates.sources_repository import CR, RF
from allyapi.allies.listing_repository import listed_clause, missing_required_training
from allyapi.allies.models import Ally, AllyStatus
from allyapi.reports.anonymity import Measure
from allyapi.reports.schemas import GroupBy

Key = tuple[date, str | None]
Cells = dict[Key, dict[str, Measure]]
Aggregates = Callable[[Any, Any], list[Any]]  # (columns, "row is shown" or None) -> SQL

_TOTAL_KIND = {Interval.week: Kind.week, Interval.month: Kind.month}
_GROUP_KIND = {
    (Interval.week, GroupBy.urgency): Kind.week_urgency,
    (Interval.week, GroupBy.topic): Kind.week_topic,
    (Interval.month, GroupBy.urgency): Kind.month_urgency,
    (Interval.month, GroupBy.topic): Kind.month_topic,
}


def _when(condition: Any, value: Any) -> Any:
    return value if condition is None else sa.case((condition, value), else_=None)


def _ratio(part: Any, whole: Any, digits: int) -> float | None:
    return round(float(part) / float(whole), digits) if whole else None


def _round(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass(frozen=True)
class Breakdown:
    """What one report asks for: the period length, the grouping, the topic calendar."""

    interval: Interval
    group_by: GroupBy | None
    calendar: TopicCalendar
    k: int

    def levels(self) -> tuple[Level, Level | None]:
        outer = Level(("bucket",), _TOTAL_KIND[self.interval], self.k)
        if self.group_by is None:
            return outer, None
        kind = _GROUP_KIND[(self.interval, self.group_by)]
        return outer, Level(("bucket", "grp"), kind, self.k)


@dataclass(frozen=True)
class Released:
    """Aggregated values of one cell, with the people shown and (groups) the candidates."""

    values: tuple[Any, ...]
    people: int
    candidates: int | None


class ReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    def _group(self, ask: Breakdown, topic: Any, moment: Any, *, dated: bool) -> Any:
        if ask.group_by is None:
            return sa.literal(None, sa.String)
        if ask.group_by is GroupBy.urgency:
            return CR.c.urgency
        return ask.calendar.sql_group(topic, moment, ask.interval, dated=dated)

    def _requests(
        self, org: str, start: date, end: date, ask: Breakdown, source: str, *extra: Any
    ) -> Any:
        """The rows of one request source in the range, with what the release rule needs."""
        seq = CR.c[f"{source}_seq"]
        return (
            sa.select(
                bucket_of(CR.c.created_at, ask.interval, self.dialect).label("bucket"),
                self._group(ask, CR.c.topic, CR.c.created_at, dated=False).label("grp"),
                seq.label("seq"),
                CR.c[f"{source}_marks"].label("marks"),
                *extra,
            )
            .where(
                CR.c.org_id == org,
                CR.c.created_at >= as_instant(start),
                CR.c.created_at < as_instant(end),
                seq.is_not(None),
            )
            .subquery()
        )

    def _feedback(self, org: str, start: date, end: date, ask: Breakdown) -> Any:
        query = sa.select(
            bucket_of(RF.c.created_on, ask.interval, self.dialect).label("bucket"),
            self._group(ask, RF.c.topic, RF.c.created_on, dated=True).label("grp"),
            RF.c.seq.label("seq"),
            RF.c.marks.label("marks"),
            RF.c.rating.label("rating"),
            sa.cast(RF.c.felt_heard, sa.Integer).label("heard"),
            sa.cast(RF.c.would_recommend, sa.Integer).label("recommend"),
        ).where(
            RF.c.org_id == org,
            RF.c.created_on >= start,
            RF.c.created_on < end,
            RF.c.seq.is_not(None),
        )
        if ask.group_by is GroupBy.urgency:  # the request's urgency is not copied
            query = query.join(CR, CR.c.id == RF.c.request_id)
        return query.subquery()

    async def _released(
        self, base: Any, ask: Breakdown, aggregates: Aggregates
    ) -> dict[Key, Released]:
        """Per period (group None) and, with a breakdown, per (period, group)."""
        outer, inner = ask.levels()
        rows = released(base, outer, inner)
        c = rows.c
        bucket = c.bucket
        step = sa.func.max(c.outer_step)
        if inner is None:
            query = sa.select(bucket, step, *aggregates(c, None)).group_by(bucket)
            return {
                (as_date(r[0]), None): Released(tuple(r[2:]), int(r[1]), None)
                for r in await self._all(query)
            }
        shown = c.inner_in == 1
        group_columns = [sa.func.max(c.inner_step), sa.func.max(c.inner_people)]
        if self.dialect == "postgresql":
            totals, groups = aggregates(c, None), aggregates(c, shown)
            query = sa.select(
                bucket, c.grp, sa.func.grouping(c.grp), step, *group_columns, *totals, *groups
            ).group_by(sa.func.grouping_sets(sa.tuple_(bucket, c.grp), sa.tuple_(bucket)))
            found: dict[Key, Released] = {}
            width = len(totals)
            for r in await self._all(query):
                if r[2]:
                    found[(as_date(r[0]), None)] = Released(
                        tuple(r[6 : 6 + width]), int(r[3]), None
                    )
                else:
                    values = tuple(r[6 + width :])
                    found[(as_date(r[0]), r[1])] = Released(values, int(r[4]), int(r[5]))
            return found
        totals_query = sa.select(bucket, step, *aggregates(c, None)).group_by(bucket)
        groups_query = sa.select(bucket, c.grp, *group_columns, *aggregates(c, shown)).group_by(
            bucket, c.grp
        )
        found = {
            (as_date(r[0]), None): Released(tuple(r[2:]), int(r[1]), None)
            for r in await self._all(totals_query)
        }
        for r in await self._all(groups_query):
            found[(as_date(r[0]), r[1])] = Released(tuple(r[4:]), int(r[2]), int(r[3]))
        return found

    async def _all(self, query: Any) -> list[Any]:
        return list((await self.session.execute(query)).all())

    async def figures(self, org: str, start: date, end: date, ask: Breakdown) -> Cells:
        """Every figure of every cell of ``start..end`` (whole buckets)."""
        cells: Cells = defaultdict(dict)
        for compute in (
            self._created,
            self._accepted,
            self._completed,
            self._wellbeing,
            self._given,
        ):
            for key, measures in (await compute(org, start, end, ask)).items():
                cells[key].update(measures)
        return dict(cells)

    @staticmethod
    def _measure(value: Any, cell: Released) -> Measure:
        return Measure(value, cell.people, cell.candidates)

    async def _created(self, org: str, start: date, end: date, ask: Breakdown) -> Cells:
        base = self._requests(org, start, end, ask, "created")
        found = await self._released(base, ask, lambda c, shown: [sa.func.count(_when(shown, 1))])
        return {
            key: {"requests_created": self._measure(cell.values[0], cell)}
            for key, cell in found.items()
        }

    async def _accepted(self, org: str, start: date, end: date, ask: Breakdown) -> Cells:
        base = self._requests(org, start, end, ask, "accepted", CR.c.accept_hours.label("hours"))
        postgres = self.dialect == "postgresql"

        def aggregates(c: Any, shown: Any) -> list[Any]:
            found: list[Any] = [sa.func.count(_when(shown, 1))]
            if postgres:
                found.append(sa.func.percentile_cont(0.5).within_group(_when(shown, c.hours)))
            return found

        found = await self._released(base, ask, aggregates)
        medians = {} if postgres else await self._medians_in_python(base, ask)
        return {
            key: {
                "requests_accepted": self._measure(cell.values[0], cell),
                "median_hours_to_accept": self._measure(
                    _round(cell.values[1] if postgres else medians.get(key), 1), cell
                ),
            }
            for key, cell in found.items()
        }

    async def _medians_in_python(self, base: Any, ask: Breakdown) -> dict[Key, float]:
        outer, inner = ask.levels()
        rows = released(base, outer, inner)
        shown = rows.c.inner_in if inner is not None else sa.literal(0)
        query = sa.select(rows.c.bucket, rows.c.grp, shown, rows.c.hours).where(
            rows.c.hours.is_not(None)
        )
        values: dict[Key, list[float]] = defaultdict(list)
        for bucket, group, in_group, hours in await self._all(query):
            day = as_date(bucket)
            values[(day, None)].append(float(hours))
            if in_group:
                values[(day, group)].append(float(hours))
        return {key: statistics.median(found) for key, found in values.items()}

    async def _completed(self, org: str, start: date, end: date, ask: Breakdown) -> Cells:
        base = self._requests(
            org,
            start,
            end,
            ask,
            "completed",
            sa.cast(CR.c.signposted, sa.Integer).label("signposted"),
        )
        found = await self._released(
            base,
            ask,
            lambda c, shown: [
                sa.func.count(_when(shown, 1)),
                sa.func.sum(_when(shown, c.signposted)),
            ],
        )
        return {
            key: {
                "requests_completed": self._measure(cell.values[0], cell),
                "signposting_rate": self._measure(
                    _ratio(cell.values[1] or 0, cell.values[0], 3), cell
                ),
            }
            for key, cell in found.items()
        }

    async def _wellbeing(self, org: str, start: date, end: date, ask: Breakdown) -> Cells:
        base = self._requests(org, start, end, ask, "wellbeing", CR.c.wellbeing.label("wellbeing"))
        found = await self._released(
            base, ask, lambda c, shown: [sa.func.avg(_when(shown, c.wellbeing))]
        )
        return {
            key: {"ally_wellbeing_average": self._measure(_round(cell.values[0], 2), cell)}
            for key, cell in found.items()
        }

    async def _given(self, org: str, start: date, end: date, ask: Breakdown) -> Cells:
        """Feedback *given* in each period, grouped by the request's topic/urgency."""
        base = self._feedback(org, start, end, ask)

        def aggregates(c: Any, shown: Any) -> list[Any]:
            return [
                sa.func.count(_when(shown, 1)),
                sa.func.sum(_when(shown, c.rating)),
                sa.func.sum(_when(shown, c.heard)),
                sa.func.sum(_when(shown, c.recommend)),
            ]

        cells: Cells = {}
        for key, cell in (await self._released(base, ask, aggregates)).items():
            answers = cell.values[0]
            cells[key] = {
                "feedback_rating_average": self._measure(
                    _ratio(cell.values[1] or 0, answers, 2), cell
                ),
                "feedback_felt_heard_rate": self._measure(
                    _ratio(cell.values[2] or 0, answers, 3), cell
                ),
                "feedback_would_recommend_rate": self._measure(
                    _ratio(cell.values[3] or 0, answers, 3), cell
                ),
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
