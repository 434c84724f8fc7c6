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
races with an arrival stores the count it started from, so it is recomputed next time. The
statements (counts read, cells loaded and upserted) are in reports/cells_repository.py.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import Interval, next_bucket
from allyapi.reports.anonymity import Measure
from allyapi.reports.cells_repository import ReportCellRepository, StoredCells
from allyapi.reports.repository import Breakdown, ReportRepository
from allyapi.reports.schemas import GroupBy

CHUNK_BUCKETS = {Interval.week: 13, Interval.month: 3}
TOTAL = ""  # the key of a bucket's total row; group keys are never empty
RULE = "r2"  # bumped when what a cell holds changes meaning

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
        self.repo = repo
        self.stored = ReportCellRepository(session)

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
        found = await self.stored.arrivals(org, interval, starts[0], starts[-1])
        return {bucket: found.get(bucket, 0) for bucket in starts}

    async def _load(
        self, org: str, interval: Interval, keys: dict[date, str], arrivals: dict[date, int]
    ) -> dict[date, BucketCells]:
        """The stored cells still valid: of this breakdown's key, at the bucket's count."""
        found = await self.stored.load(org, interval, keys.values(), min(keys), max(keys))
        return {
            stored.bucket: _decode(stored.cells)
            for stored in found
            if keys.get(stored.bucket) == stored.breakdown
            and arrivals.get(stored.bucket) == stored.arrivals
        }

    async def _store(
        self,
        org: str,
        interval: Interval,
        keys: dict[date, str],
        arrivals: dict[date, int],
        cells: dict[date, BucketCells],
    ) -> None:
        """Each computed bucket, labelled with the count read before computing it."""
        await self.stored.store(
            org,
            interval,
            [
                StoredCells(bucket, keys[bucket], arrivals[bucket], _encode(bucket_cells))
                for bucket, bucket_cells in cells.items()
            ],
        )
