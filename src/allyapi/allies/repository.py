"""Ally SQL. Every query is scoped to the caller's org (docs/privacy.md, P8).

*Listed* is always computed in SQL (``listed_clause``) against today's date, also for single
reads, so an expired required course unlists an ally with no job having to run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from allyapi.allies.availability import moments_param
from allyapi.allies.availability_repository import available_in
from allyapi.allies.listing_repository import ALLIES, listed_clause
from allyapi.allies.models import BANDS, FULL, Ally, AllyStatus
from allyapi.core.db.models import json_array_contains, json_array_has_language

# Allies without a snapshot yet sort after the ranked ones of their band (tie-breaks are
# below 2**63).
TIEBREAK_UNRANKED = 2**63 - 1
# Bind parameters per statement: well under SQLite's 32766 and asyncpg's 32767.
CHUNK = 1000


# The columns the directory and a request's ally profile are read from, declared here rather
# than taken from the response schemas: a new schema field is a decision about what is read.
# tests/allies/test_columns.py fails while a view's fields and its columns differ.
PUBLIC_PROFILE_COLUMNS = (
    "id",
    "display_name",
    "pronouns",
    "job_title",
    "department",
    "location",
    "timezone",
    "languages",
    "topics",
    "bio",
    "contact_channels",
    "availability",
    "accepting",
)
LISTED = "listed"  # computed from the row and its training (listing_repository.py), not a column
COORDINATOR_VIEW_COLUMNS = (
    *PUBLIC_PROFILE_COLUMNS,
    "status",
    "paused_by",
    "max_open_requests",
    LISTED,
    "created_at",
    "approved_at",
)


@dataclass(frozen=True)
class DirectoryFilter:
    """Directory filters, already normalised (lower-cased, canonical language tags)."""

    status: str | None = None
    language: str | None = None
    topic: str | None = None
    location: str | None = None
    q: str | None = None
    accepting: bool | None = None
    # Available at an instant: its local weekday and minute in each zone of the org, as the
    # JSON list ``available_in`` binds (allies/availability.py,
    # allies/availability_repository.py).
    moments: str | None = None


@dataclass(frozen=True)
class SuggestionQuery:
    topic: str | None
    language: str | None
    timezone: str | None
    # Lower-cased department of the caller to rank last; None: no department rule.
    avoid_department: str | None
    limit: int
    # Who counts as having room: "published", the band snapshot everyone may see (the
    # suggestions, a 409's alternatives); "live", the open-request count itself (a matcher
    # about to claim a slot, whose answer is a stored request, not a list to poll).
    capacity: Literal["published", "live"] = "published"
    # Rank allies whose availability contains this instant (now) first, after the department
    # rule; None: availability plays no part.
    available_at: datetime | None = None


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

    async def suggestions(
        self, org_id: str, today: date, wanted: SuggestionQuery
    ) -> Sequence[Ally]:
        """Listed allies with room, best match first (ranking in the service doc).

        The load is the ally's *band* in the last snapshot (allies/ranking.py), never the live
        count, and equal candidates are ordered by the day's keyed tie-break: one request
        reorders nothing until the next snapshot. An ally not yet in a snapshot (approved
        since) ranks in the lightest band, after those that are.
        """
        band = sa.func.coalesce(BANDS.c.band, 0)
        if wanted.capacity == "live":
            room = col(Ally.open_requests) < col(Ally.max_open_requests)
        else:
            room = band < FULL
        ranking: list[ColumnElement[int]] = []
        if wanted.avoid_department is not None:
            ranking.append(_last_when(col(Ally.department_key) == wanted.avoid_department))
        if wanted.available_at is not None:
            moments = await moments_param(self.session, org_id, wanted.available_at)
            ranking.append(
                _first_when(available_in(ALLIES.c.id, sa.bindparam(None, moments, sa.String())))
            )
        if wanted.topic is not None:
            ranking.append(_first_when(json_array_contains(col(Ally.topics), wanted.topic)))
        if wanted.language is not None:
            ranking.append(
                _first_when(json_array_has_language(col(Ally.languages), wanted.language))
            )
        if wanted.timezone is not None:
            ranking.append(_first_when(col(Ally.timezone) == wanted.timezone))
        keys = [*(rank.label(f"rank_{i}") for i, rank in enumerate(ranking)), band.label("band")]
        keys += [
            sa.func.coalesce(BANDS.c.tiebreak, TIEBREAK_UNRANKED).label("tiebreak"),
            col(Ally.id).label("ally_id"),
        ]
        # Rank narrow rows (the sort keys and the id), then load the few winners: sorting
        # whole profiles of 10,000 allies spilled to disk (100 ms per ranking).
        best = (
            sa.select(*keys)
            .select_from(ALLIES.outerjoin(BANDS, BANDS.c.ally_id == ALLIES.c.id))
            .where(col(Ally.org_id) == org_id, listed_clause(today), room)
            .order_by(*(key.name for key in keys))
            .limit(wanted.limit)
            .subquery("best")
        )
        query = (
            select(Ally)
            .join(best, col(Ally.id) == best.c.ally_id)
            .order_by(*(best.c[key.name] for key in keys))
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
                    paused_by=None,
                    retired_at=now,
                    updated_at=now,
                    version=col(Ally.version) + 1,
                )
                .execution_options(synchronize_session=False)
            )

    async def any_in_org(self, org_id: str) -> bool:
        """Whether the org has an ally at all, whatever its status."""
        query = select(Ally.id).where(Ally.org_id == org_id).limit(1)
        return (await self.session.execute(query)).first() is not None

    def add(self, ally: Ally) -> None:
        self.session.add(ally)


# Sort keys: 0 sorts first. A NULL condition (a missing department or zone) counts as false.
def _first_when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return sa.case((condition, 0), else_=1)


def _last_when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return sa.case((condition, 1), else_=0)


async def directory_page(
    connection: AsyncConnection,
    fields: tuple[str, ...],
    org_id: str,
    today: date,
    where: DirectoryFilter,
    *,
    limit: int,
    after: tuple[str, uuid.UUID] | None,
) -> list[dict[str, Any]]:
    """One page of the directory as dicts of ``fields``, ordered by (display_name, id);
    ``limit`` rows (the page's ``PageRequest.fetch``).

    ``fields`` are ally columns, or ``listed`` (computed). Core rows of exactly those columns,
    never ORM entities: the directory is the hottest read, and building entities was a third
    of its CPU (bench/RESULTS.md).
    """
    present = tuple(f.name for f in dataclass_fields(where) if getattr(where, f.name) is not None)
    query = _directory_statement(fields, today, present, after is not None)
    params: dict[str, Any] = {"org_id": org_id, "limit": limit}
    params.update({name: getattr(where, name) for name in present})
    if where.q is not None:  # search_text is stored lower-cased; % and _ in q are literal
        params["q"] = "%" + _escape_like(where.q) + "%"
    if after is not None:
        params["after_name"], params["after_id"] = after
    result = await connection.execute(query, params)
    return [dict(zip(fields, row, strict=True)) for row in result]


@lru_cache(maxsize=256)
def _directory_statement(
    fields: tuple[str, ...], today: date, present: tuple[str, ...], keyset: bool
) -> sa.Select[Any]:
    """The statement for one combination of columns and filters, built once (per day) and
    reused with new bound values: no statement construction on the request path."""
    listed = listed_clause(today, per_row=True)
    columns = [listed if name == LISTED else ALLIES.c[name] for name in fields]
    query = sa.select(*columns).where(ALLIES.c.org_id == sa.bindparam("org_id"))
    query = query.where(listed if "status" not in present else ALLIES.c.status == _param("status"))
    for name in present:
        if name != "status":
            query = query.where(_FILTERS[name]())
    if keyset:
        after = (_param("after_name"), sa.bindparam("after_id", type_=ALLIES.c.id.type))
        query = query.where(sa.tuple_(ALLIES.c.display_name, ALLIES.c.id) > sa.tuple_(*after))
    return query.order_by(ALLIES.c.display_name, ALLIES.c.id).limit(sa.bindparam("limit"))


def _param(name: str) -> sa.BindParameter[str]:
    return sa.bindparam(name, type_=sa.String())


# Directory filters, by DirectoryFilter field; values are bound at execution.
_FILTERS: dict[str, Any] = {
    "language": lambda: json_array_has_language(ALLIES.c.languages, _param("language")),
    "topic": lambda: json_array_contains(ALLIES.c.topics, _param("topic")),
    "location": lambda: sa.func.lower(ALLIES.c.location) == _param("location"),
    "q": lambda: ALLIES.c.search_text.like(_param("q"), escape="/"),
    "accepting": lambda: ALLIES.c.accepting == sa.bindparam("accepting", type_=sa.Boolean()),
    "moments": lambda: available_in(ALLIES.c.id, _param("moments")),
}


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")
