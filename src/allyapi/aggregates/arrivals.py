"""Contributions arrive in the aggregates: a fixed order, and who was new in which cell.

The release rule (docs/aggregates.md) shows a cell's first ⌊n/k⌋·k people *in the order they
arrived*. That order must be append-only (a newcomer can never be placed before people
already shown, or the figure would swap one person for another) and immutable. Timestamps
are neither: two transactions commit in another order than they started, and erasure and
purge cut dates to the day (feedback is stored by the day from the start). So a pass, one
at a time per organisation, hands out numbers:

- it takes the rows whose event has not arrived yet (``FOR UPDATE SKIP LOCKED``: it never
  waits for a request being changed; a skipped row arrives in the next pass);
- orders them by the day of the event and then by their random id, so the numbers say no
  more about timing than the stored days already do (and a pass's arrivals are in a random
  order among themselves);
- numbers them after everything that arrived before, from a counter per organisation and
  source; a later pass, serialised behind this one, can only number after it;
- marks, per cell, whether the row's person is new there (aggregates/marks.py).

It also counts, per period bucket, how many contributions arrived there
(``bucket_arrivals``): report figures change only through arrivals, so cached report cells
stay exact until their bucket's count moves (reports/cells.py).

It runs in the background every ``ALLYAPI_JOBS_INTERVAL_SECONDS`` (jobs/aggregates.py, and in
``allyapi purge``), never on a read: a read never writes, and how long it takes says nothing
about whether anyone contributed since the last one. Figures therefore follow contributions
within one interval (a minute by default).
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.buckets import Interval, bucket_start
from allyapi.aggregates.calendar import TopicCalendar, calendar_of
from allyapi.aggregates.marks import Arrival, Arrived, CellHistory, mark
from allyapi.aggregates.models import ArrivalClock, BucketArrivals
from allyapi.aggregates.sources import CR, PF, RF, SOURCES, Source, day_span
from allyapi.contact_requests.models import ARRIVING
from allyapi.core.db.models import table_of
from allyapi.core.db.session import Database
from allyapi.core.db.upsert import dialect_insert
from allyapi.topics.service import TopicService

BATCH_SIZE = 1000  # rows per source per pass
MAX_PASSES = 50  # per organisation per run: the rest waits for the next run
MAX_ORGS = 10_000
CLOCK = table_of(ArrivalClock)
BUCKETS = table_of(BucketArrivals)


async def _take_turn(session: AsyncSession, org: str) -> bool:
    """One pass per organisation at a time. PostgreSQL: a transaction-scoped advisory lock,
    given up at once when another process holds it (that one does the work). SQLite:
    sessions hold the database's write lock from BEGIN already."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = sa.func.hashtextextended("arrivals\n" + org, 0)
    return bool((await session.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key)))).scalar())


async def _advance_clock(session: AsyncSession, org: str, source: str, count: int) -> int:
    """Reserve ``count`` numbers; returns the last number handed out before them."""
    dialect = session.get_bind().dialect.name
    insert = dialect_insert(dialect, CLOCK).values(org_id=org, source=source, last_seq=count)
    statement = insert.on_conflict_do_update(
        index_elements=[CLOCK.c.org_id, CLOCK.c.source],
        set_={"last_seq": CLOCK.c.last_seq + count},
    ).returning(CLOCK.c.last_seq)
    last = int((await session.execute(statement)).scalar_one())
    return last - count


async def _count_in_buckets(session: AsyncSession, org: str, days: list[date]) -> None:
    """Add the arrivals to their week and month buckets (invalidates cached report cells)."""
    counts = Counter(
        (interval.value, bucket_start(day, interval)) for day in days for interval in Interval
    )
    dialect = session.get_bind().dialect.name
    for (interval, bucket), count in sorted(counts.items()):
        insert = dialect_insert(dialect, BUCKETS).values(
            org_id=org, interval=interval, bucket=bucket, arrivals=count
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[BUCKETS.c.org_id, BUCKETS.c.interval, BUCKETS.c.bucket],
                set_={"arrivals": BUCKETS.c.arrivals + count},
            )
        )


async def _arrive_source(
    session: AsyncSession, org: str, source: Source, calendar: TopicCalendar
) -> int:
    rows = await source.pending(session, org, BATCH_SIZE)
    if not rows:
        return 0
    rows.sort(key=lambda row: (row.day, row.id))
    persons = {row.person for row in rows if row.person is not None}
    earlier = await source.arrived(session, org, day_span([row.day for row in rows]), persons)
    history = CellHistory.of(
        Arrived(row.person, source.cells(row, calendar), marks) for row, marks in earlier
    )
    marks = mark(
        (Arrival(row.person, source.cells(row, calendar), row.commented) for row in rows),
        history,
    )
    before = await _advance_clock(session, org, source.name, len(rows))
    await source.store(
        session, [(row, before + 1 + index, marks[index]) for index, row in enumerate(rows)]
    )
    if source.in_reports:
        await _count_in_buckets(session, org, [row.day for row in rows])
    return len(rows)


async def arrive_once(session: AsyncSession, org: str) -> int:
    """One pass over every source for one organisation (in the caller's transaction)."""
    if not await _take_turn(session, org):
        return 0
    calendar = calendar_of(await TopicService(session).listings(org))
    return sum([await _arrive_source(session, org, source, calendar) for source in SOURCES])


async def organisations_with_arrivals(session: AsyncSession) -> list[str]:
    queries = [
        sa.select(CR.c.org_id).where(ARRIVING),
        sa.select(RF.c.org_id).where(RF.c.seq.is_(None)),
        sa.select(PF.c.org_id).where(PF.c.seq.is_(None)),
    ]
    union = sa.union(*queries).subquery()
    found = await session.execute(sa.select(union.c.org_id).limit(MAX_ORGS))
    return sorted(str(org) for org in found.scalars().all())


async def arrive_all(database: Database) -> dict[str, int]:
    """Every organisation's pending contributions, a bounded number of passes each, each pass
    its own short transaction. Returns how many contributions arrived, per organisation."""
    async with database.sessionmaker() as session:
        orgs = await organisations_with_arrivals(session)
    arrived: Counter[str] = Counter()
    for org in orgs:
        for _ in range(MAX_PASSES):
            async with database.sessionmaker() as session, session.begin():
                count = await arrive_once(session, org)
            arrived[org] += count
            if count == 0:
                break
    return {org: count for org, count in arrived.items() if count}
