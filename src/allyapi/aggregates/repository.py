"""The arrival pass's own SQL (aggregates/arrivals.py): whose turn it is, the counters it keeps.

- one pass per organisation at a time: a transaction-scoped advisory lock on PostgreSQL;
- ``arrival_clocks``: numbers reserved per organisation and source by an upsert that returns
  the new last number, so two passes can never hand out the same one;
- ``bucket_arrivals``: contributions counted per period bucket, by upsert (report cells stay
  exact until their bucket's count moves, reports/cells.py);
- which organisations have anything still to arrive.

Each source's rows are read and written in aggregates/sources_repository.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.models import ArrivalClock, BucketArrivals
from allyapi.aggregates.sources_repository import CR, PF, RF
from allyapi.contact_requests.models import ARRIVING
from allyapi.core.db.models import table_of
from allyapi.core.db.upsert import dialect_insert

CLOCK = table_of(ArrivalClock)
BUCKETS = table_of(BucketArrivals)


async def take_turn(session: AsyncSession, org: str) -> bool:
    """One pass per organisation at a time. PostgreSQL: a transaction-scoped advisory lock,
    given up at once when another process holds it (that one does the work). SQLite:
    sessions hold the database's write lock from BEGIN already."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = sa.func.hashtextextended("arrivals\n" + org, 0)
    return bool((await session.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key)))).scalar())


async def advance_clock(session: AsyncSession, org: str, source: str, count: int) -> int:
    """Reserve ``count`` numbers; returns the last number handed out before them."""
    dialect = session.get_bind().dialect.name
    insert = dialect_insert(dialect, CLOCK).values(org_id=org, source=source, last_seq=count)
    statement = insert.on_conflict_do_update(
        index_elements=[CLOCK.c.org_id, CLOCK.c.source],
        set_={"last_seq": CLOCK.c.last_seq + count},
    ).returning(CLOCK.c.last_seq)
    last = int((await session.execute(statement)).scalar_one())
    return last - count


async def count_in_buckets(
    session: AsyncSession, org: str, counts: Iterable[tuple[tuple[str, date], int]]
) -> None:
    """Add ``((interval, bucket), arrivals)`` to each bucket's count, in the order given."""
    dialect = session.get_bind().dialect.name
    for (interval, bucket), count in counts:
        insert = dialect_insert(dialect, BUCKETS).values(
            org_id=org, interval=interval, bucket=bucket, arrivals=count
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[BUCKETS.c.org_id, BUCKETS.c.interval, BUCKETS.c.bucket],
                set_={"arrivals": BUCKETS.c.arrivals + count},
            )
        )


async def organisations_with_arrivals(session: AsyncSession, limit: int) -> list[str]:
    """Up to ``limit`` organisations with a request event, feedback or answer still to
    arrive, sorted."""
    queries = [
        sa.select(CR.c.org_id).where(ARRIVING),
        sa.select(RF.c.org_id).where(RF.c.seq.is_(None)),
        sa.select(PF.c.org_id).where(PF.c.seq.is_(None)),
    ]
    union = sa.union(*queries).subquery()
    found = await session.execute(sa.select(union.c.org_id).limit(limit))
    return sorted(str(org) for org in found.scalars().all())
