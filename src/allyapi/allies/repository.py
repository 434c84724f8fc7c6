"""Ally SQL. Every query is scoped to the caller's org (P8).

*Listed* is always computed in SQL (``listed_clause``) against today's date, also for single
reads, so an expired required course unlists an ally with no job having to run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from allyapi.allies.listing import listed_clause
from allyapi.allies.models import Ally, AllyStatus
from allyapi.core.models import json_array_contains

# Bind parameters per statement: well under SQLite's 32766 and asyncpg's 32767.
CHUNK = 1000


@dataclass(frozen=True)
class DirectoryFilter:
    """Directory filters, already normalised (lower-cased, canonical language tags)."""

    status: str | None = None
    language: str | None = None
    topic: str | None = None
    location: str | None = None
    q: str | None = None
    accepting: bool | None = None


@dataclass(frozen=True)
class SuggestionQuery:
    topic: str | None
    language: str | None
    timezone: str | None
    # Lower-cased department of the caller to rank last; None: no department rule.
    avoid_department: str | None
    limit: int


class AllyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, org_id: str, ally_id: uuid.UUID, today: date, *, for_update: bool = False
    ) -> tuple[Ally, bool] | None:
        """The ally and whether it is listed today."""
        query = select(Ally, listed_clause(today).label("listed")).where(
            Ally.org_id == org_id, Ally.id == ally_id
        )
        if for_update:
            query = query.with_for_update(of=Ally)
        row = (await self.session.execute(query)).first()
        return None if row is None else (row[0], bool(row[1]))

    async def by_subject(
        self, org_id: str, subject_ref: str, today: date, *, for_update: bool = False
    ) -> tuple[Ally, bool] | None:
        query = select(Ally, listed_clause(today).label("listed")).where(
            Ally.org_id == org_id, Ally.subject_ref == subject_ref
        )
        if for_update:
            query = query.with_for_update(of=Ally)
        row = (await self.session.execute(query)).first()
        return None if row is None else (row[0], bool(row[1]))

    async def is_listed(self, org_id: str, ally_id: uuid.UUID, today: date) -> bool:
        query = sa.select(listed_clause(today)).where(
            col(Ally.org_id) == org_id, col(Ally.id) == ally_id
        )
        return bool((await self.session.execute(query)).scalar())

    async def page(
        self,
        org_id: str,
        today: date,
        where: DirectoryFilter,
        *,
        limit: int,
        after: tuple[str, uuid.UUID] | None,
    ) -> Sequence[tuple[Ally, bool]]:
        """One query per page, ordered by (display_name, id); ``limit + 1`` rows."""
        listed = listed_clause(today, per_row=True)
        query = select(Ally, listed.label("listed")).where(Ally.org_id == org_id)
        query = query.where(listed if where.status is None else col(Ally.status) == where.status)
        for clause in _filter_clauses(where):
            query = query.where(clause)
        if after is not None:
            query = query.where(sa.tuple_(col(Ally.display_name), col(Ally.id)) > after)
        query = query.order_by(col(Ally.display_name), col(Ally.id)).limit(limit + 1)
        rows = (await self.session.execute(query)).all()
        return [(row[0], bool(row[1])) for row in rows]

    async def suggestions(
        self, org_id: str, today: date, wanted: SuggestionQuery
    ) -> Sequence[Ally]:
        """Listed allies with free capacity, best match first (ranking in the service doc).

        The load is ``Ally.open_requests``, the counter contact requests keep with conditional
        UPDATEs: the same number their capacity check uses, so a suggested ally can take the
        request, and no count over contact_requests is needed per row.
        """
        load = col(Ally.open_requests)
        ranking: list[ColumnElement[int]] = []
        if wanted.avoid_department is not None:
            ranking.append(_last_when(col(Ally.department_key) == wanted.avoid_department))
        if wanted.topic is not None:
            ranking.append(_first_when(json_array_contains(col(Ally.topics), wanted.topic)))
        if wanted.language is not None:
            ranking.append(_first_when(json_array_contains(col(Ally.languages), wanted.language)))
        if wanted.timezone is not None:
            ranking.append(_first_when(col(Ally.timezone) == wanted.timezone))
        query = (
            select(Ally)
            .where(Ally.org_id == org_id, listed_clause(today), load < col(Ally.max_open_requests))
            .order_by(*ranking, load, col(Ally.display_name), col(Ally.id))
            .limit(wanted.limit)
        )
        return (await self.session.execute(query)).scalars().all()

    async def roster_candidates(self, org_id: str) -> Sequence[tuple[uuid.UUID, str]]:
        """Every ally of the org not yet retired, locked until the roster sync commits."""
        query = (
            sa.select(col(Ally.id), col(Ally.subject_ref))
            .where(col(Ally.org_id) == org_id, col(Ally.status) != AllyStatus.retired)
            .with_for_update()
        )
        rows = (await self.session.execute(query)).all()
        return [(row[0], row[1]) for row in rows]

    async def retire_many(self, org_id: str, ally_ids: Sequence[uuid.UUID], now: datetime) -> None:
        for start in range(0, len(ally_ids), CHUNK):
            chunk = ally_ids[start : start + CHUNK]
            await self.session.execute(
                sa.update(Ally)
                .where(
                    col(Ally.org_id) == org_id,
                    col(Ally.id).in_(chunk),
                    col(Ally.status) != AllyStatus.retired,
                )
                .values(
                    status=AllyStatus.retired,
                    retired_at=now,
                    updated_at=now,
                    version=col(Ally.version) + 1,
                )
                .execution_options(synchronize_session=False)
            )

    def add(self, ally: Ally) -> None:
        self.session.add(ally)


# Sort keys: 0 sorts first. A NULL condition (a missing department or zone) counts as false.
def _first_when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return sa.case((condition, 0), else_=1)


def _last_when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return sa.case((condition, 1), else_=0)


def _filter_clauses(where: DirectoryFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if where.language is not None:
        clauses.append(json_array_contains(col(Ally.languages), where.language))
    if where.topic is not None:
        clauses.append(json_array_contains(col(Ally.topics), where.topic))
    if where.location is not None:
        clauses.append(sa.func.lower(col(Ally.location)) == where.location)
    if where.q is not None:
        # search_text is stored lower-cased; autoescape makes % and _ in q literal.
        clauses.append(col(Ally.search_text).contains(where.q, autoescape=True))
    if where.accepting is not None:
        clauses.append(col(Ally.accepting).is_(where.accepting))
    return clauses
