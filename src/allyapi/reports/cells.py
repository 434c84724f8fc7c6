"""Report cells per period bucket: computed in SQL, kept in a cache until a bucket changes.

Why a cache: an org with a million requests has ~10,000 of them per week; ranking and
aggregating a year of weeks scans ~500,000 rows per report. But the figures of a bucket
change only when a contribution arrives in it (aggregates/arrivals.py): arrival is the one
writer of everything the release rule reads, and it counts its arrivals per bucket
(``bucket_arrivals``). So a cell computed at a bucket's count is stored in ``report_cells``
(released figures with their populations, no rows, no people) with that count, and served
as long as the count is unchanged: exact, never stale, and recomputed only for buckets that
received something since. The background runner recomputes the default ranges right after
each arrival pass (jobs/aggregates.py), so a report rarely computes anything on its path.

Cached cells are exactly what a live computation gives under the release rule, per fixed
calendar bucket, so the cache changes nothing about what overlapping queries or repeated
reads can reveal. The key of a cell names the rule, k and (by topic) the bucket's topic
groups, so a change of k or of the groups never serves a stale shape. A computation that
races with an arrival stores the count it started from, so it is recomputed next time.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import Interval, next_bucket
from allyapi.aggregates.models import BucketArrivals
from allyapi.core.db.models import table_of, utcnow
from allyapi.core.db.upsert import dialect_insert
from allyapi.reports.anonymity import Measure
from allyapi.reports.models import ReportCellCache
from allyapi.reports.repository import Breakdown, ReportRepository
from allyapi.reports.schemas import GroupBy

CHUNK_BUCKETS = {Interval.week: 13, Interval.month: 3}
TOTAL = ""  # the key of a bucket's total row; group keys are never empty
RULE = "r2"  # bumped when what a cell holds changes meaning
CELLS = table_of(ReportCellCache)
ARRIVALS = table_of(BucketArrivals)

# group key (TOTAL for the period's total) -> metric -> measure
BucketCells = dict[str, dict[str, Measure]]


def breakdown_key(ask: Breakdown, bucket: date) -> str:
    prefix = f"{RULE}:k{ask.k}"
    if ask.group_by is None:
        return prefix
    if ask.group_by is GroupBy.urgency:
        return f"{prefix}:urgency"
    keys = ask.calendar.keys(ask.interval, bucket)
    return f"{prefix}:topic:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]


def _encode(cells: BucketCells) -> dict[str, Any]:
    return {
        group: {metric: [m.value, m.population, m.candidates] for metric, m in measures.items()}
        for group, measures in cells.items()
    }


def _decode(stored: dict[str, Any]) -> BucketCells:
    return {
        group: {
            metric: Measure(found[0], int(found[1]), None if found[2] is None else int(found[2]))
            for metric, found in measures.items()
        }
        for group, measures in stored.items()
    }


def runs(buckets: list[date], interval: Interval) -> list[list[date]]:
    """Consecutive buckets in runs of at most CHUNK_BUCKETS: one statement each, so each
    stays short and small in memory whatever the range, and no valid bucket is recomputed."""
    found: list[list[date]] = []
    for bucket in buckets:
        last = found[-1] if found else None
        if (
            last
            and next_bucket(last[-1], interval) == bucket
            and len(last) < CHUNK_BUCKETS[interval]
        ):
            last.append(bucket)
        else:
            found.append([bucket])
    return found


class CellSource:
    def __init__(self, session: AsyncSession, repo: ReportRepository) -> None:
        self.session = session
        self.repo = repo

    async def cells(self, org: str, starts: list[date], ask: Breakdown) -> dict[date, BucketCells]:
        keys = {bucket: breakdown_key(ask, bucket) for bucket in starts}
        arrivals = await self._arrivals(org, ask.interval, starts)
        cached = await self._load(org, ask.interval, keys, arrivals)
        computed: dict[date, BucketCells] = {}
        for run in runs([b for b in starts if b not in cached], ask.interval):
            end = next_bucket(run[-1], ask.interval)
            found = await self._compute(org, run[0], end, ask)
            computed.update({bucket: found.get(bucket, {}) for bucket in run})
        await self._store(org, ask.interval, keys, arrivals, computed)
        return {b: cached[b] if b in cached else computed[b] for b in starts}

    async def _compute(
        self, org: str, start: date, end: date, ask: Breakdown
    ) -> dict[date, BucketCells]:
        result: dict[date, BucketCells] = {}
        for (bucket, group), measures in (await self.repo.figures(org, start, end, ask)).items():
            key = TOTAL if group is None else str(group)
            result.setdefault(bucket, {}).setdefault(key, {}).update(measures)
        return result

    async def _arrivals(self, org: str, interval: Interval, starts: list[date]) -> dict[date, int]:
        """Read *before* computing: a cell is labelled with the count it may lag behind."""
        query = sa.select(ARRIVALS.c.bucket, ARRIVALS.c.arrivals).where(
            ARRIVALS.c.org_id == org,
            ARRIVALS.c.interval == interval.value,
            ARRIVALS.c.bucket >= starts[0],
            ARRIVALS.c.bucket <= starts[-1],
        )
        found = {row[0]: int(row[1]) for row in (await self.session.execute(query)).all()}
        return {bucket: found.get(bucket, 0) for bucket in starts}

    async def _load(
        self, org: str, interval: Interval, keys: dict[date, str], arrivals: dict[date, int]
    ) -> dict[date, BucketCells]:
        query = sa.select(CELLS.c.bucket, CELLS.c.breakdown, CELLS.c.arrivals, CELLS.c.cells).where(
            CELLS.c.org_id == org,
            CELLS.c.interval == interval.value,
            CELLS.c.breakdown.in_(sorted(set(keys.values()))),
            CELLS.c.bucket >= min(keys),
            CELLS.c.bucket <= max(keys),
        )
        return {
            bucket: _decode(cells)
            for bucket, breakdown, count, cells in (await self.session.execute(query)).all()
            if keys.get(bucket) == breakdown and arrivals.get(bucket) == count
        }

    async def _store(
        self,
        org: str,
        interval: Interval,
        keys: dict[date, str],
        arrivals: dict[date, int],
        cells: dict[date, BucketCells],
    ) -> None:
        """Upsert; a computation that started from an older count never replaces a newer one."""
        if not cells:
            return
        now = utcnow()
        rows = [
            {
                "org_id": org,
                "interval": interval.value,
                "breakdown": keys[bucket],
                "bucket": bucket,
                "computed_at": now,
                "arrivals": arrivals[bucket],
                "cells": _encode(bucket_cells),
            }
            for bucket, bucket_cells in cells.items()
        ]
        statement = dialect_insert(self.repo.dialect, CELLS).values(rows)
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[CELLS.c.org_id, CELLS.c.interval, CELLS.c.breakdown, CELLS.c.bucket],
            set_={
                "computed_at": excluded.computed_at,
                "arrivals": excluded.arrivals,
                "cells": excluded.cells,
            },
            where=excluded.arrivals >= CELLS.c.arrivals,
        )
        await self.session.execute(statement)
