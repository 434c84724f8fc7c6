"""How busy an ally looks to the suggestions: a coarse band, refreshed on a schedule.

Ranking suggestions by each ally's live open-request count let an employee time another
person's request: polling ``GET /v1/allies/suggestions`` every 60 ms and watching a chosen
ally move down (or vanish when full) detected 8 of 10 requests to within ~22 ms. So the
suggestions never read the live count. They read a *snapshot* per ally, refreshed for the
whole organisation once per period (``ALLYAPI_SUGGESTION_REFRESH_MINUTES``, default 60) by a
background job at a time no request chooses:

- ``band``: 0 while less than half the ally's capacity is used, 1 from half on, ``FULL`` at
  capacity (not suggested). Within a band the order is ``tiebreak``;
- ``tiebreak``: HMAC-SHA256 of the ally id and the day under a key derived from the pseudonym
  key: stable all day (so nothing reorders between refreshes), different every day (so no
  ally is always first), and unpredictable from outside.

So a request changes nothing anyone can see until the next refresh, where it is blended with
every other change of the period; an ally who just became full stays suggested until then
(choosing them answers 409 with alternatives). What remains is written in docs/operations.md,
"Suggestions". Auto-matching ranks by the same snapshot but only claims an ally whose live
count has room (contact_requests/matching.py).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from allyapi.allies.bands_repository import database_time, stale_band_rows, upsert_bands
from allyapi.allies.models import FULL
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings

__all__ = ["FULL", "Refresh", "band_of", "database_time", "refresh_rank_bands", "tiebreak"]

CHUNK = 500
TIEBREAK_PURPOSE = b"allyapi suggestions tie-break v1"


def band_of(open_requests: int, capacity: int) -> int:
    if open_requests >= capacity:
        return FULL
    return 0 if 2 * open_requests < capacity else 1


def tiebreak_key(pseudonym_key: bytes) -> bytes:
    """A key of its own, so a tie-break value can never equal any stored pseudonym."""
    return hmac.new(pseudonym_key, TIEBREAK_PURPOSE, hashlib.sha256).digest()


def tiebreak(key: bytes, ally_id: uuid.UUID, day: date) -> int:
    digest = hmac.new(key, f"{ally_id}|{day.isoformat()}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # fits a signed BIGINT


@dataclass(frozen=True)
class Refresh:
    epoch: int
    refreshed: int


async def refresh_rank_bands(
    database: Database, settings: Settings, at: datetime | None = None
) -> Refresh:
    """Snapshot every non-retired ally whose band is from an earlier period (or missing).

    Idempotent and safe in several processes: a row only moves forward to a later period
    (``WHERE epoch < excluded.epoch``), and only this job writes the table, so request
    transactions never wait on it. Each chunk is its own short transaction.
    """
    now = at or await database_time(database)
    period = settings.suggestion_refresh_minutes * 60
    epoch = int(now.timestamp()) // period
    day = datetime.fromtimestamp(epoch * period, UTC).date()
    key = tiebreak_key(settings.pseudonym_key_bytes)
    rows = await stale_band_rows(database, epoch)
    for start in range(0, len(rows), CHUNK):
        await upsert_bands(
            database,
            [
                {
                    "ally_id": ally_id,
                    "band": band_of(load, capacity),
                    "tiebreak": tiebreak(key, ally_id, day),
                    "epoch": epoch,
                }
                for ally_id, load, capacity in rows[start : start + CHUNK]
            ],
        )
    return Refresh(epoch=epoch, refreshed=len(rows))
