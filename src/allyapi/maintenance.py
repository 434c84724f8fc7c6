"""One-shot maintenance for the CLI: ``allyapi purge`` and ``allyapi rotate-keys``.

Both are safe while servers run: they use the same batched, guarded, ``SKIP LOCKED`` work as
the in-server runner, so a cron job, an operator and the servers can overlap.
"""

from __future__ import annotations

from allyapi.aggregates.arrivals import arrive_all
from allyapi.contact_requests.jobs import JobCounts, run_all_jobs
from allyapi.core.crypto import Cipher
from allyapi.core.database import Database
from allyapi.core.sealed import RotationCount, rotate_column
from allyapi.core.settings import Settings
from allyapi.sealed import SEALED_COLUMNS


async def purge(settings: Settings) -> tuple[JobCounts, int]:
    """The time-driven jobs, then the arrival of new contributions in the aggregates."""
    database = Database(settings)
    try:
        counts = await run_all_jobs(database, settings)
        return counts, sum((await arrive_all(database)).values())
    finally:
        await database.dispose()


async def rotate_keys(settings: Settings) -> list[tuple[str, RotationCount]]:
    """Re-seal every sealed column's old values under the first key of ALLYAPI_DATA_KEYS."""
    cipher = Cipher(settings.data_key_ring)
    database = Database(settings)
    try:
        return [
            (sealed.label, await rotate_column(database.sessionmaker, sealed, cipher))
            for sealed in SEALED_COLUMNS
        ]
    finally:
        await database.dispose()
