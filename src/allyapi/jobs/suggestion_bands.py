"""The suggestions' load-band snapshot (allies/ranking.py), checked every
``ALLYAPI_JOBS_INTERVAL_SECONDS``: a refresh happens once per
``ALLYAPI_SUGGESTION_REFRESH_MINUTES``, taken by whichever process looks first after the
period began (the snapshot only moves forward, so several processes at once are harmless).
"""

from __future__ import annotations

from allyapi.allies.ranking import Refresh, refresh_rank_bands
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.runner import Job


class SuggestionBands(Job):
    name = "suggestion-bands"

    async def run(self, database: Database, settings: Settings) -> Refresh:
        return await refresh_rank_bands(database, settings)
