"""*Listed* exactly as docs/allies.md defines it: the SQL clause every ally query shares.

Listed = ``active`` and ``accepting`` and every *required* course of the org has a current
(verified, unexpired) record. Because it is evaluated on every read against today's date,
a required course expiring unlists the ally without anyone doing anything. The clause is
written on table columns, so ORM and Core statements (the directory, the create path, the
reports) all build on the same expression. Below it, the statements of the listing
announcements (allies/announcements.py): the state last announced, compared with *listed* now
and moved in one conditional UPDATE, and the periodic check's claim of allies whose state
differs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from allyapi.allies.models import Ally, AllyStatus
from allyapi.core.db.models import table_of
from allyapi.training.models import TrainingCourse, TrainingRecord

# Table columns, not ORM attributes: the same SQL, usable in Core statements that never enter
# the ORM (the directory, bench/RESULTS.md) as well as in ORM queries.
ALLIES = table_of(Ally)
COURSES = table_of(TrainingCourse)
RECORDS = table_of(TrainingRecord)
CHUNK = 1000  # ids per statement: well under both databases' bind-parameter limits


def current_record_clause(today: date) -> ColumnElement[bool]:
    """A training record that counts: verified and not yet expired."""
    return sa.and_(
        RECORDS.c.verified.is_(True),
        sa.or_(RECORDS.c.expires_on.is_(None), RECORDS.c.expires_on > today),
    )


# Memoised per date: the expressions are immutable, so every statement of the day can share
# them instead of rebuilding the nested EXISTS on each request (bench/RESULTS.md).
@lru_cache(maxsize=8)
def missing_required_training(today: date, *, per_row: bool = False) -> ColumnElement[bool]:
    """True when some required course of the ally's org has no current record.

    ``per_row``: for queries that stop after a page of allies (the directory). PostgreSQL
    otherwise plans the inner EXISTS as one hashed scan of *every* training record of *every*
    organisation (18 ms per directory page at 10,000 allies in the benchmark, growing with all
    tenants' records); ``OFFSET 0`` keeps it a per-ally index probe (0.4 ms, flat with org
    size). Same result either way. Queries that rank every ally (suggestions, reports) keep
    the hashed plan, which is cheaper when all rows are visited.
    """
    has_current = sa.select(sa.literal(1)).where(
        RECORDS.c.ally_id == ALLIES.c.id,
        RECORDS.c.course_id == COURSES.c.id,
        current_record_clause(today),
    )
    if per_row:
        # A planner fence: PostgreSQL never hashes or pulls up an EXISTS that has an OFFSET.
        has_current = has_current.offset(sa.literal_column("0"))
    # Two levels down, auto-correlation would not reach ``allies``: without correlate_except
    # the subquery gets its own FROM allies and any ally's record would count for every ally.
    has_current_exists = has_current.correlate_except(RECORDS).exists()
    return (
        sa.select(sa.literal(1))
        .where(
            COURSES.c.org_id == ALLIES.c.org_id,
            COURSES.c.required.is_(True),
            ~has_current_exists,
        )
        .correlate_except(COURSES)
        .exists()
    )


@lru_cache(maxsize=8)
def listed_clause(today: date, *, per_row: bool = False) -> ColumnElement[bool]:
    return sa.and_(
        ALLIES.c.status == AllyStatus.active,
        ALLIES.c.accepting.is_(True),
        ~missing_required_training(today, per_row=per_row),
    )


# The listing announcements' statements (allies/announcements.py) ----------------------------


def _flipped(on: date) -> ColumnElement[bool]:
    return ALLIES.c.listed_announced.is_distinct_from(listed_clause(on))


async def record_listed_flips(
    session: AsyncSession, org_id: str, ally_ids: Iterable[uuid.UUID] | None, on: date
) -> list[tuple[uuid.UUID, bool]]:
    """Set ``listed_announced`` to *listed* on ``on`` where the two differ, among ``ally_ids``
    (None: every ally of the org); (id, listed now) of each row this UPDATE changed.

    The WHERE repeats the difference, so of two writers of one row only the first changes it
    (PostgreSQL re-checks the WHERE after waiting for the row lock).
    """
    listed = listed_clause(on)
    update = (
        sa.update(ALLIES)
        .where(ALLIES.c.org_id == org_id, ALLIES.c.listed_announced.is_distinct_from(listed))
        .values(listed_announced=listed)
        .returning(ALLIES.c.id, ALLIES.c.listed_announced)
    )
    if ally_ids is None:
        rows = list((await session.execute(update)).all())
    else:
        ids = sorted(set(ally_ids))  # one lock order for every writer
        rows = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            result = await session.execute(update.where(ALLIES.c.id.in_(chunk)))
            rows.extend(result.all())
    return [(row[0], bool(row[1])) for row in rows]


async def claim_unannounced(
    session: AsyncSession, on: date, limit: int
) -> list[tuple[str, uuid.UUID]]:
    """(org id, ally id) of up to ``limit`` allies whose listed state on ``on`` differs from
    the one announced, in id order, locked with SKIP LOCKED (a row some writer holds is left
    to it)."""
    due = (
        sa.select(ALLIES.c.org_id, ALLIES.c.id)
        .where(_flipped(on))
        .order_by(ALLIES.c.id)
        .limit(limit)
        .with_for_update(of=ALLIES, skip_locked=True)
    )
    return [(row[0], row[1]) for row in (await session.execute(due)).all()]
