"""The aggregates' background work: contributions arrive, then report cells are renewed.

Every ``ALLYAPI_JOBS_INTERVAL_SECONDS`` a runner in the server lets new contributions arrive
(aggregates/arrivals.py) and then recomputes, for each organisation that received some, the
report cells of the ranges reports ask by default (the last year, weekly and monthly; no
breakdown, by urgency, by topic) whose bucket changed (reports/cells.py), so a report finds
them cached. Each organisation and breakdown is its own short transaction; several processes
at once only upsert the same cells twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from allyapi.aggregates.arrivals import arrive_all
from allyapi.aggregates.buckets import Interval, snap
from allyapi.contact_requests.repository import orgs_with_requests
from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.runner import Job
from allyapi.reports.schemas import GroupBy
from allyapi.reports.service import ReportService

WARM_DAYS = 364  # the reports' default range
MAX_ORGS = 10_000


async def warm_report_cells(
    database: Database, settings: Settings, orgs: Iterable[str] | None = None
) -> int:
    """Renew the default ranges' cells of ``orgs`` (default: every organisation with
    requests); returns how many reports it warmed."""
    if orgs is None:
        async with database.sessionmaker() as session:
            orgs = await orgs_with_requests(session, MAX_ORGS)
    last = today()
    warmed = 0
    for org in orgs:
        for interval in Interval:
            starts = snap(last - timedelta(days=WARM_DAYS), last, interval)
            for group_by in (None, GroupBy.urgency, GroupBy.topic):
                async with database.sessionmaker() as session, session.begin():
                    service = ReportService(session, settings.k_anonymity)
                    ask = await service.breakdown(org, interval, group_by)
                    await service.source.cells(org, starts, ask)
                warmed += 1
    return warmed


async def arrive_and_warm(database: Database, settings: Settings) -> int:
    """One run of the runner: returns how many contributions arrived."""
    arrived = await arrive_all(database)
    await warm_report_cells(database, settings, sorted(arrived))
    return sum(arrived.values())


class ArrivalsAndReportCells(Job):
    """Off when ``jobs_interval_seconds`` is 0 (then ``allyapi purge`` must run regularly, as
    for expiry and retention)."""

    name = "aggregates"

    async def run(self, database: Database, settings: Settings) -> int:
        return await arrive_and_warm(database, settings)
