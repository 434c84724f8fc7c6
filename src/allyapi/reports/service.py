"""The programme report (docs/aggregates.md) under k-anonymity.

How a suppressed cell is kept from being recovered:

1. *Small cells*: a figure computed from fewer than ``k`` people (distinct requesters;
   distinct allies for ally wellbeing) is ``{"value": null, "suppressed": true}``.
2. *Totals*: each period has a total row next to its groups. Where a group cell is hidden and
   the total shown, the next-smallest cells are hidden too until the hidden cells hold ≥ k
   people together (reports/anonymity.py), so "total − visible cells" only ever yields an
   aggregate of ≥ k people. Done per figure, since each figure has its own population.
3. *Overlapping queries*: ranges are snapped outward to whole ISO weeks or calendar months
   (aggregates/buckets.py) and every figure belongs to exactly one bucket; there is no figure
   over the whole range. Two queries with different ``from``/``to`` therefore return the very
   same cells for the buckets they share, and no partial bucket ever exists to subtract.
   Weekly and monthly cells of the same rows are different tables of the same data: a month
   minus its visible weeks is covered by the same rule only within one query; a caller who
   combines both intervals learns at most sums of whole hidden weeks. That residual
   (the classic "linked tables" problem) is accepted, as in survey tools.
4. *Over time*: a cell shows the figures of its first ⌊n/k⌋·k people in arrival order, so it
   moves only in steps of k people, in the current period as in settled ones
   (aggregates/release.py); groups are released from their period's total. Topic groups
   come from the coordinators' list in force when the period began (aggregates/calendar.py),
   never from what employees type.

Range bounds: 2 years of weeks, 5 years of months (422 beyond). Defaults: the last 52 weeks
(or 12 months) up to today. Periods that ended over five weeks ago are served from a cache of
their cells refreshed daily (reports/cells.py); recent periods are computed live.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import Interval, label, next_bucket, snap
from allyapi.aggregates.calendar import OTHER, TopicCalendar, calendar_of
from allyapi.core.db.models import today
from allyapi.reports.anonymity import EMPTY, Figure, breakdown, figure
from allyapi.reports.cells import TOTAL, BucketCells, CellSource
from allyapi.reports.repository import Breakdown, ReportRepository
from allyapi.reports.schemas import (
    CurrentFigures,
    GroupBy,
    ProgramReport,
    ReportCells,
    ReportGroup,
    ReportPeriod,
)
from allyapi.topics.service import TopicService

METRICS = tuple(ReportCells.model_fields)
URGENCIES = ("low", "normal", "high")


def in_steps(count: int, k: int) -> int:
    """A count of people, released in steps of k: the count of its first ⌊n/k⌋·k."""
    return count // k * k


class ReportService:
    def __init__(self, session: AsyncSession, k: int) -> None:
        self.session = session
        self.repo = ReportRepository(session)
        self.source = CellSource(session, self.repo)
        self.k = k

    async def breakdown(self, org: str, interval: Interval, group_by: GroupBy | None) -> Breakdown:
        calendar: TopicCalendar = calendar_of(await TopicService(self.session).listings(org))
        return Breakdown(interval, group_by, calendar, self.k)

    async def program(
        self,
        org: str,
        first: date | None,
        last: date | None,
        interval: Interval,
        group_by: GroupBy | None,
    ) -> ProgramReport:
        last = last or today()
        first = first or last - timedelta(days=364 if interval is Interval.week else 334)
        starts = snap(first, last, interval)
        ask = await self.breakdown(org, interval, group_by)
        cells = await self.source.cells(org, starts, ask)
        return ProgramReport(
            interval=interval,
            group_by=group_by,
            starts_on=starts[0],
            ends_on=next_bucket(starts[-1], interval) - timedelta(days=1),
            k=self.k,
            periods=[self._period(bucket, ask, cells[bucket]) for bucket in starts],
            current=await self._current(org),
        )

    @staticmethod
    def group_keys(ask: Breakdown, bucket: date) -> list[str]:
        """The groups of one period: its topic groups and (other), or the urgencies."""
        if ask.group_by is GroupBy.topic:
            return [*ask.calendar.keys(ask.interval, bucket), OTHER]
        if ask.group_by is GroupBy.urgency:
            return list(URGENCIES)
        return []

    def _period(self, bucket: date, ask: Breakdown, cells: BucketCells) -> ReportPeriod:
        keys = self.group_keys(ask, bucket)
        grouped = ask.group_by is not None
        total_figures: dict[str, Figure] = {}
        group_figures: dict[str, dict[str, Figure]] = {key: {} for key in keys}
        for metric in METRICS:
            total = cells.get(TOTAL, {}).get(metric, EMPTY)
            if not grouped:
                total_figures[metric] = figure(total, self.k)
                continue
            breakdown_cells = {key: cells.get(key, {}).get(metric, EMPTY) for key in keys}
            shown, total_figures[metric] = breakdown(breakdown_cells, total, self.k)
            for key, value in shown.items():
                group_figures[key][metric] = value
        return ReportPeriod(
            label=label(bucket, ask.interval),
            starts_on=bucket,
            ends_on=next_bucket(bucket, ask.interval) - timedelta(days=1),
            total=ReportCells(**total_figures),
            groups=[ReportGroup(key=key, cells=ReportCells(**group_figures[key])) for key in keys],
        )

    async def _current(self, org: str) -> CurrentFigures:
        """Today's network, in steps of k allies (docs/aggregates.md, "Current figures")."""
        listed, active, compliant = await self.repo.network_today(org, today())
        active_shown = in_steps(active, self.k)
        return CurrentFigures(
            listed_allies=in_steps(listed, self.k),
            active_allies=active_shown,
            training_compliance=(
                round(in_steps(compliant, self.k) / active_shown, 3) if active_shown else None
            ),
        )
