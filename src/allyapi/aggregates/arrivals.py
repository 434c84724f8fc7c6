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

Its statements (the turn, the counters, each source's rows) are in aggregates/repository.py
and aggregates/sources_repository.py.

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

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates import repository
from allyapi.aggregates.buckets import Interval, bucket_start
from allyapi.aggregates.calendar import TopicCalendar, calendar_of
from allyapi.aggregates.marks import Arrival, Arrived, CellHistory, mark
from allyapi.aggregates.sources import SOURCES, Source, day_span
from allyapi.core.db.session import Database
from allyapi.topics.service import TopicService

BATCH_SIZE = 1000  # rows per source per pass
MAX_PASSES = 50  # per organisation per run: the rest waits for the next run
MAX_ORGS = 10_000


async def _count_in_buckets(session: AsyncSession, org: str, days: list[date]) -> None:
    """Add the arrivals to their week and month buckets (invalidates cached report cells),
    bucket after bucket in one fixed order."""
    counts = Counter(
        (interval.value, bucket_start(day, interval)) for day in days for interval in Interval
    )
    await repository.count_in_buckets(session, org, sorted(counts.items()))


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
    before = await repository.advance_clock(session, org, source.name, len(rows))
    await source.store(
        session, [(row, before + 1 + index, marks[index]) for index, row in enumerate(rows)]
    )
    if source.in_reports:
        await _count_in_buckets(session, org, [row.day for row in rows])
    return len(rows)


async def arrive_once(session: AsyncSession, org: str) -> int:
    """One pass over every source for one organisation (in the caller's transaction)."""
    if not await repository.take_turn(session, org):
        return 0
    calendar = calendar_of(await TopicService(session).listings(org))
    return sum([await _arrive_source(session, org, source, calendar) for source in SOURCES])


async def arrive_all(database: Database) -> dict[str, int]:
    """Every organisation's pending contributions, a bounded number of passes each, each pass
    its own short transaction. Returns how many contributions arrived, per organisation."""
    async with database.sessionmaker() as session:
        orgs = await repository.organisations_with_arrivals(session, MAX_ORGS)
    arrived: Counter[str] = Counter()
    for org in orgs:
        for _ in range(MAX_PASSES):
            async with database.sessionmaker() as session, session.begin():
                count = await arrive_once(session, org)
            arrived[org] += count
            if count == 0:
                break
    return {org: count for org, count in arrived.items() if count}
