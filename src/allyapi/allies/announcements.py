"""``ally.listed`` / ``ally.unlisted``: once per flip of an ally's *listed* state, whatever flips it.

*Listed* moves with the status, ``accepting``, the org's required courses, training records
and the calendar. Rather than teaching every write which transitions matter, each row stores
the state last announced (``listed_announced``) and ``announce_listing_changes`` compares it
with the state now, in one conditional UPDATE (allies/listing_repository.py, beside the
*listed* clause itself)::

    UPDATE allies SET listed_announced = <listed>
    WHERE org_id = :org AND id IN (...) AND listed_announced IS DISTINCT FROM <listed>
    RETURNING id, listed_announced

Only the transaction whose UPDATE changed the row enqueues the event, in the same
transaction. On PostgreSQL a second writer of the same row waits for the first and re-checks
the WHERE against the committed ``listed_announced``, so two processes (a request and the
periodic check, or two requests) never both announce one flip; SQLite runs one writer at a
time (``BEGIN IMMEDIATE``). Every write that can change listing calls it after its change;
``announce_due`` (run every few minutes in each process) catches what only time changes (a
required course expiring) and anything a write did not name.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.listing_repository import claim_unannounced, record_listed_flips
from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.webhooks.outbox import enqueue_each

BATCH_SIZE = 200
MAX_BATCHES = 50


async def announce_listing_changes(
    session: AsyncSession,
    org_id: str,
    ally_ids: Iterable[uuid.UUID] | None,
    *,
    on: date | None = None,
) -> int:
    """Announce every flip of *listed* among ``ally_ids`` (None: every ally of the org) since
    the last announcement; returns how many flips this transaction announced."""
    rows = await record_listed_flips(session, org_id, ally_ids, on or today())
    by_state: dict[bool, list[dict[str, object]]] = defaultdict(list)
    for ally_id, now_listed in sorted(rows, key=lambda row: str(row[0])):
        by_state[now_listed].append({"ally_id": ally_id})
    for now_listed, items in by_state.items():
        event = "ally.listed" if now_listed else "ally.unlisted"
        await enqueue_each(session, org_id, event, items)
    return len(rows)


async def announce_due_batch(session: AsyncSession, on: date) -> int:
    """Up to ``BATCH_SIZE`` allies whose listed state differs from the one announced, locked
    with SKIP LOCKED (a request writing one of them announces it itself), then announced."""
    by_org: dict[str, list[uuid.UUID]] = defaultdict(list)
    for org_id, ally_id in await claim_unannounced(session, on, BATCH_SIZE):
        by_org[org_id].append(ally_id)
    announced = 0
    for org_id, ids in by_org.items():
        announced += await announce_listing_changes(session, org_id, ids, on=on)
    return announced


async def announce_due(database: Database, *, on: date | None = None) -> int:
    """One pass of the periodic check; each batch its own short transaction."""
    day = on or today()
    total = 0
    for _ in range(MAX_BATCHES):
        async with database.sessionmaker() as session, session.begin():
            announced = await announce_due_batch(session, day)
        total += announced
        if announced < BATCH_SIZE:
            break
    return total
