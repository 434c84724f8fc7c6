"""One-shot maintenance for the CLI: ``allyapi purge`` and ``allyapi rotate-keys``.

Both are safe while servers run: they use the same batched, guarded, ``SKIP LOCKED`` work as
the in-server runner, so a cron job, an operator and the servers can overlap.
"""

from __future__ import annotations

from allyapi.aggregates.arrivals import arrive_all
from allyapi.allies.ranking import refresh_rank_bands
from allyapi.contact_requests.rotation import LABEL, convert_legacy_requests
from allyapi.core.db.session import Database
from allyapi.core.privacy.crypto import Cipher
from allyapi.core.privacy.rotation import RotationCount, rotate_column
from allyapi.core.settings import Settings
from allyapi.jobs.contact_requests import JobCounts, run_all_jobs
from allyapi.sealed_columns import SEALED_COLUMNS


async def purge(settings: Settings) -> tuple[JobCounts, int]:
    """The time-driven jobs once, the suggestions' load snapshot included (with in-server
    jobs off, a scheduler running ``allyapi purge`` is what keeps it fresh), then the arrival
    of new contributions in the aggregates."""
    database = Database(settings)
    try:
        await refresh_rank_bands(database, settings)
        counts = await run_all_jobs(database, settings)
        return counts, sum((await arrive_all(database)).values())
    finally:
        await database.dispose()


async def rotate_keys(settings: Settings) -> list[tuple[str, RotationCount]]:
    """Re-seal every value sealed under the configured keys (per-request data keys among
    them) under the first key of ALLYAPI_DATA_KEYS, after giving requests still sealed the
    older way a data key of their own."""
    cipher = Cipher(settings.data_key_ring)
    database = Database(settings)
    try:
        converted = await convert_legacy_requests(database.sessionmaker, cipher)
        return [
            (LABEL, converted),
            *[
                (sealed.label, await rotate_column(database.sessionmaker, sealed, cipher))
                for sealed in SEALED_COLUMNS
            ],
        ]
    finally:
        await database.dispose()
