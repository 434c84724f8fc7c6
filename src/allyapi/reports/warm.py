"""Keeps the settled report cells warm, off the request path.

Without it the first report after the cache's 24 h expire pays the cold cost (seconds on an
organisation with a million requests). A runner in the server recomputes, every hour, the
settled cells older than ``WARM_HOURS`` for the ranges reports ask by default (the last year,
weekly and monthly; no breakdown, by urgency, by topic), so a report finds them cached. Each
organisation and breakdown is its own short transaction; several processes warming at once
only upsert the same cells twice.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col

from allyapi.contact_requests.models import ContactRequest
from allyapi.core.background import PeriodicRunner
from allyapi.core.database import Database
from allyapi.core.models import today
from allyapi.core.settings import Settings
from allyapi.reports.buckets import Interval, snap
from allyapi.reports.cells import SETTLED_DAYS
from allyapi.reports.schemas import GroupBy
from allyapi.reports.service import ReportService

WARM_HOURS = 12  # < cells.CACHE_HOURS: cells are renewed well before a report would skip them
WARM_INTERVAL_SECONDS = 3600
WARM_DAYS = 364  # the reports' default range
MAX_ORGS = 10_000


async def warm_report_cells(database: Database, settings: Settings) -> int:
    """One pass over every organisation with requests; returns how many reports it warmed."""
    async with database.sessionmaker() as session:
        orgs = (
            (
                await session.execute(
                    sa.select(col(ContactRequest.org_id)).distinct().limit(MAX_ORGS)
                )
            )
            .scalars()
            .all()
        )
    last_settled = today() - timedelta(days=SETTLED_DAYS)
    warmed = 0
    for org in orgs:
        for interval in Interval:
            starts = snap(last_settled - timedelta(days=WARM_DAYS), last_settled, interval)
            for group_by in (None, GroupBy.urgency, GroupBy.topic):
                async with database.sessionmaker() as session, session.begin():
                    service = ReportService(session, settings.k_anonymity)
                    ask = await service.breakdown(org, interval, group_by)
                    await service.source.cells(org, starts, ask, fresh_hours=WARM_HOURS)
                warmed += 1
    return warmed


def start_report_warmer(settings: Settings, database: Database) -> PeriodicRunner | None:
    """Started with the other background jobs; off when ``jobs_interval_seconds`` is 0."""
    if settings.jobs_interval_seconds <= 0:
        return None
    runner = PeriodicRunner(
        "report-cells", lambda: warm_report_cells(database, settings), WARM_INTERVAL_SECONDS
    )
    runner.start()
    return runner
