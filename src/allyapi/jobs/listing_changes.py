"""``ally.listed``/``ally.unlisted`` for flips no request causes: an ally whose required course
expired today is unlisted by the calendar alone, so this job looks every two minutes while
webhook deliveries are on (allies/announcements.py: conditional updates make it safe in
several processes, and each flip is announced once).
"""

from __future__ import annotations

from allyapi.allies.announcements import announce_due
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.runner import Job

LISTING_INTERVAL_SECONDS = 120.0


class ListingChanges(Job):
    name = "webhook-listing-changes"

    def interval_seconds(self, settings: Settings) -> float:
        return LISTING_INTERVAL_SECONDS if settings.webhook_interval_seconds > 0 else 0

    async def run(self, database: Database, settings: Settings) -> int:
        return await announce_due(database)
