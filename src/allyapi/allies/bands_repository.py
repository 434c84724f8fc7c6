"""The suggestions' band snapshot (allies/ranking.py decides the bands): the database's clock,
the allies whose band is from an earlier period, and the snapshot rows written forward.

Each statement runs on its own connection or short transaction, beside live traffic.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from allyapi.allies.listing_repository import ALLIES
from allyapi.allies.models import BANDS, AllyStatus
from allyapi.core.db.session import Database
from allyapi.core.db.upsert import dialect_insert


async def database_time(database: Database) -> datetime:
    """The database's clock, as every replica sees the same one."""
    async with database.autocommit.connect() as connection:
        now = await connection.scalar(sa.select(sa.func.current_timestamp(type_=sa.DateTime())))
    assert isinstance(now, datetime)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


async def stale_band_rows(database: Database, epoch: int) -> list[tuple[uuid.UUID, int, int]]:
    """(id, open requests, capacity) of every non-retired ally whose band is from an earlier
    period than ``epoch`` (or missing)."""
    stale = (
        sa.select(ALLIES.c.id, ALLIES.c.open_requests, ALLIES.c.max_open_requests)
        .select_from(ALLIES.outerjoin(BANDS, BANDS.c.ally_id == ALLIES.c.id))
        .where(
            ALLIES.c.status != AllyStatus.retired,
            sa.or_(BANDS.c.epoch.is_(None), BANDS.c.epoch < epoch),
        )
    )
    async with database.autocommit.connect() as connection:
        return [(row[0], row[1], row[2]) for row in await connection.execute(stale)]


async def upsert_bands(database: Database, values: list[dict[str, Any]]) -> None:
    """One chunk of snapshots in its own short transaction; a row only moves forward to a
    later period (``WHERE epoch < excluded.epoch``)."""
    insert = dialect_insert(database.dialect, BANDS)
    upsert = insert.on_conflict_do_update(
        index_elements=[BANDS.c.ally_id],
        set_={name: insert.excluded[name] for name in ("band", "tiebreak", "epoch")},
        where=BANDS.c.epoch < insert.excluded.epoch,
    )
    async with database.engine.begin() as connection:
        await connection.execute(upsert, values)
