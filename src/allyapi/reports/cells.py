"""Report cells per period bucket: computed in SQL, settled periods served from a cache.

Why a cache: an org with a million requests has ~10,000 of them per week; ranking and
aggregating a year of weeks scans ~500,000 rows per report. Most of those periods are
*settled*: requests created then were answered or expired long ago and feedback given then
cannot change. So the figures of a period whose last day is more than ``SETTLED_DAYS`` ago
are stored in ``report_cells`` (released figures with their populations, no rows, no
people) and reused for ``CACHE_HOURS``; recent periods are always computed live.
A report is therefore at most a day stale for periods that ended over five weeks ago (a late
completion of an old request shows up within a day) and exact for the rest.

Cached cells are exactly what a live computation gives under the release rule, per fixed
calendar bucket, so the cache changes nothing about what overlapping queries or repeated
reads can reveal: a cell renewed a day later moves only in steps of k, like a live one. The
key of a cell names the rule, k and (by topic) the bucket's topic groups, so a change of k
or of the groups never serves a stale shape.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.core.models import table_of, today, utcnow
from allyapi.core.upsert import dialect_insert
from allyapi.reports.anonymity import Measure
from allyapi.reports.buckets import Interval, next_bucket
from allyapi.reports.models import ReportCellCache
from allyapi.reports.repository import Breakdown, ReportRepository
from allyapi.reports.schemas import GroupBy

SETTLED_DAYS = 35
CACHE_HOURS = 24
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


class CellSource:
    def __init__(self, session: AsyncSession, repo: ReportRepository) -> None:
        self.session = session
        self.repo = repo

    async def cells(
        self,
        org: str,
        starts: list[date],
        ask: Breakdown,
        *,
        fresh_hours: int = CACHE_HOURS,
    ) -> dict[date, BucketCells]:
        """``fresh_hours``: cached cells older than this are recomputed (the warmer uses less
        than CACHE_HOURS, so a report never finds its settled cells expired)."""
        interval = ask.interval
        settled_before = today() - timedelta(days=SETTLED_DAYS)
        settled = {
            b: breakdown_key(ask, b) for b in starts if next_bucket(b, interval) <= settled_before
        }
        cached = await self._load(org, interval, settled, fresh_hours)
        wanted = [b for b in starts if b not in cached]
        computed: dict[date, BucketCells] = {}
        # A few buckets per statement: each stays short and small in memory, whatever the
        # range (a cold two-year report is 8+ statements, not one long one).
        for offset in range(0, len(wanted), CHUNK_BUCKETS[interval]):
            chunk = wanted[offset : offset + CHUNK_BUCKETS[interval]]
            end = next_bucket(chunk[-1], interval)
            computed.update(await self._compute(org, chunk[0], end, ask))
        fresh = {b: computed.get(b, {}) for b in wanted if b in settled}
        await self._store(org, interval, settled, fresh)
        return {b: cached[b] if b in cached else computed.get(b, {}) for b in starts}

    async def _compute(
        self, org: str, start: date, end: date, ask: Breakdown
    ) -> dict[date, BucketCells]:
        result: dict[date, BucketCells] = {}
        for (bucket, group), measures in (await self.repo.figures(org, start, end, ask)).items():
            key = TOTAL if group is None else str(group)
            result.setdefault(bucket, {}).setdefault(key, {}).update(measures)
        return result

    async def _load(
        self, org: str, interval: Interval, keys: dict[date, str], fresh_hours: int
    ) -> dict[date, BucketCells]:
        if not keys:
            return {}
        fresh_since = utcnow() - timedelta(hours=fresh_hours)
        query = sa.select(
            col(ReportCellCache.bucket), col(ReportCellCache.breakdown), col(ReportCellCache.cells)
        ).where(
            col(ReportCellCache.org_id) == org,
            col(ReportCellCache.interval) == interval.value,
            col(ReportCellCache.breakdown).in_(sorted(set(keys.values()))),
            col(ReportCellCache.bucket) >= min(keys),
            col(ReportCellCache.bucket) <= max(keys),
            col(ReportCellCache.computed_at) >= fresh_since,
        )
        rows = (await self.session.execute(query)).all()
        return {row[0]: _decode(row[2]) for row in rows if keys.get(row[0]) == row[1]}

    async def _store(
        self, org: str, interval: Interval, keys: dict[date, str], cells: dict[date, BucketCells]
    ) -> None:
        """Upsert: two reports filling the same bucket at once both succeed."""
        if not cells:
            return
        now = utcnow()
        table = table_of(ReportCellCache)
        rows = [
            {
                "org_id": org,
                "interval": interval.value,
                "breakdown": keys[bucket],
                "bucket": bucket,
                "computed_at": now,
                "cells": _encode(bucket_cells),
            }
            for bucket, bucket_cells in cells.items()
        ]
        statement = dialect_insert(self.repo.dialect, table).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.org_id, table.c.interval, table.c.breakdown, table.c.bucket],
            set_={"computed_at": statement.excluded.computed_at, "cells": statement.excluded.cells},
        )
        await self.session.execute(statement)
