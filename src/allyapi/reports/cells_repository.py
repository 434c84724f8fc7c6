"""The report cell cache's SQL (reports/cells.py): bucket arrival counts read, cached cells
loaded, computed cells upserted.

The upsert never lets a computation that started from an older arrival count replace a
cell stored at a newer one (``WHERE excluded.arrivals >= report_cells.arrivals``), whichever
process or transaction commits last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import Interval
from allyapi.aggregates.models import BucketArrivals
from allyapi.core.db.models import table_of, utcnow
from allyapi.core.db.upsert import dialect_insert
from allyapi.reports.models import ReportCellCache

CELLS = table_of(ReportCellCache)
ARRIVALS = table_of(BucketArrivals)


@dataclass(frozen=True)
class StoredCells:
    """One bucket's cells of one breakdown, as stored: labelled with the bucket's arrival
    count they were computed at."""

    bucket: date
    breakdown: str
    arrivals: int
    cells: dict[str, Any]


class ReportCellRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def arrivals(
        self, org: str, interval: Interval, first: date, last: date
    ) -> dict[date, int]:
        """The arrival count of each bucket of ``first..last`` that has one."""
        query = sa.select(ARRIVALS.c.bucket, ARRIVALS.c.arrivals).where(
            ARRIVALS.c.org_id == org,
            ARRIVALS.c.interval == interval.value,
            ARRIVALS.c.bucket >= first,
            ARRIVALS.c.bucket <= last,
        )
        return {row[0]: int(row[1]) for row in (await self.session.execute(query)).all()}

    async def load(
        self, org: str, interval: Interval, breakdowns: Iterable[str], first: date, last: date
    ) -> list[StoredCells]:
        """Every stored cell of ``breakdowns`` in the buckets ``first..last``, at any count."""
        query = sa.select(CELLS.c.bucket, CELLS.c.breakdown, CELLS.c.arrivals, CELLS.c.cells).where(
            CELLS.c.org_id == org,
            CELLS.c.interval == interval.value,
            CELLS.c.breakdown.in_(sorted(set(breakdowns))),
            CELLS.c.bucket >= first,
            CELLS.c.bucket <= last,
        )
        return [
            StoredCells(bucket, breakdown, count, cells)
            for bucket, breakdown, count, cells in (await self.session.execute(query)).all()
        ]

    async def store(self, org: str, interval: Interval, cells: Iterable[StoredCells]) -> None:
        """Upsert; a computation that started from an older count never replaces a newer one."""
        now = utcnow()
        rows = [
            {
                "org_id": org,
                "interval": interval.value,
                "breakdown": stored.breakdown,
                "bucket": stored.bucket,
                "computed_at": now,
                "arrivals": stored.arrivals,
                "cells": stored.cells,
            }
            for stored in cells
        ]
        if not rows:
            return
        statement = dialect_insert(self.dialect, CELLS).values(rows)
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
