"""Report cells per period bucket: computed in SQL, settled periods served from a cache.

Why a cache: an org with a million requests has ~10,000 of them per week; computing distinct
requesters and medians for a year of weeks scans ~500,000 rows per report. Most of those
periods are *settled*: requests created then were answered or expired long ago and feedback
given then cannot change. So the figures of a period whose last day is more than
``SETTLED_DAYS`` ago are stored in ``report_cells`` (aggregates with their populations, no
rows, no people) and reused for ``CACHE_HOURS``; recent periods are always computed live.
A report is therefore at most a day stale for periods that ended over five weeks ago (a late
completion of an old request shows up within a day) and exact for the rest.

Cached cells are exactly the cells a live computation gives, per fixed calendar bucket, so the
cache changes nothing about what overlapping queries can reveal (reports/buckets.py).
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.core.models import table_of, today, utcnow
from allyapi.reports.anonymity import Measure
from allyapi.reports.buckets import Interval, next_bucket
from allyapi.reports.models import ReportCellCache
from allyapi.reports.repository import ReportRepository
from allyapi.reports.schemas import GroupBy

SETTLED_DAYS = 35
CACHE_HOURS = 24
CHUNK_BUCKETS = {Interval.week: 13, Interval.month: 3}
TOTAL = ""  # the key of a bucket's total row; group keys are never empty

# group key (TOTAL for the period's total) -> metric -> measure
BucketCells = dict[str, dict[str, Measure]]


def breakdown_key(group_by: GroupBy | None, keys: list[str]) -> str:
    if group_by is None:
        return ""
    if group_by is GroupBy.urgency:
        return "urgency"
    return "topic:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]


def _encode(cells: BucketCells) -> dict[str, Any]:
    return {
        group: {metric: [m.value, m.population] for metric, m in measures.items()}
        for group, measures in cells.items()
    }


def _decode(stored: dict[str, Any]) -> BucketCells:
    return {
        group: {metric: Measure(pair[0], int(pair[1])) for metric, pair in measures.items()}
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
        interval: Interval,
        group_by: GroupBy | None,
        keys: list[str],
        *,
        fresh_hours: int = CACHE_HOURS,
    ) -> dict[date, BucketCells]:
        """``fresh_hours``: cached cells older than this are recomputed (the warmer uses less
        than CACHE_HOURS, so a report never finds its settled cells expired)."""
        settled_before = today() - timedelta(days=SETTLED_DAYS)
        settled = [b for b in starts if next_bucket(b, interval) <= settled_before]
        breakdown = breakdown_key(group_by, keys)
        cached = await self._load(org, interval, breakdown, settled, fresh_hours)
        wanted = [b for b in starts if b not in cached]
        computed: dict[date, BucketCells] = {}
        # A few buckets per statement: each stays short and small in memory, whatever the
        # range (a cold two-year report is 8+ statements, not one long one).
        for offset in range(0, len(wanted), CHUNK_BUCKETS[interval]):
            chunk = wanted[offset : offset + CHUNK_BUCKETS[interval]]
            end = next_bucket(chunk[-1], interval)
            computed.update(await self._compute(org, chunk[0], end, interval, group_by))
        fresh = {b: computed.get(b, {}) for b in wanted if b in settled}
        await self._store(org, interval, breakdown, fresh)
        return {b: cached[b] if b in cached else computed.get(b, {}) for b in starts}

    async def _compute(
        self, org: str, start: date, end: date, interval: Interval, group_by: GroupBy | None
    ) -> dict[date, BucketCells]:
        sources = [
            await self.repo.requests(org, start, end, interval, group_by),
            await self.repo.feedback(org, start, end, interval, group_by),
        ]
        result: dict[date, BucketCells] = {}
        for cells in sources:
            for (bucket, group), measures in cells.items():
                key = TOTAL if group is None else str(group)
                result.setdefault(bucket, {}).setdefault(key, {}).update(measures)
        return result

    async def _load(
        self, org: str, interval: Interval, breakdown: str, buckets: list[date], fresh_hours: int
    ) -> dict[date, BucketCells]:
        if not buckets:
            return {}
        fresh_since = utcnow() - timedelta(hours=fresh_hours)
        query = sa.select(col(ReportCellCache.bucket), col(ReportCellCache.cells)).where(
            col(ReportCellCache.org_id) == org,
            col(ReportCellCache.interval) == interval.value,
            col(ReportCellCache.breakdown) == breakdown,
            col(ReportCellCache.bucket) >= buckets[0],
            col(ReportCellCache.bucket) <= buckets[-1],
            col(ReportCellCache.computed_at) >= fresh_since,
        )
        rows = (await self.session.execute(query)).all()
        return {row[0]: _decode(row[1]) for row in rows}

    async def _store(
        self, org: str, interval: Interval, breakdown: str, cells: dict[date, BucketCells]
    ) -> None:
        """Upsert: two reports filling the same bucket at once both succeed."""
        if not cells:
            return
        now = utcnow()
        insert = postgresql.insert if self.repo.dialect == "postgresql" else sqlite.insert
        table = table_of(ReportCellCache)
        rows = [
            {
                "org_id": org,
                "interval": interval.value,
                "breakdown": breakdown,
                "bucket": bucket,
                "computed_at": now,
                "cells": _encode(bucket_cells),
            }
            for bucket, bucket_cells in cells.items()
        ]
        statement = insert(table).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.org_id, table.c.interval, table.c.breakdown, table.c.bucket],
            set_={"computed_at": statement.excluded.computed_at, "cells": statement.excluded.cells},
        )
        await self.session.execute(statement)
