"""The availability windows' SQL (allies/availability.py has the rules): the rows stored per
ally, the zones an organisation's windows use, and ``available_in``, the test of an instant
against an ally's windows that the directory and the suggestions build on.

``available_in`` is a compiled construct because the two databases say it differently
(``jsonb_to_recordset`` on PostgreSQL, ``json_each`` on SQLite); it names ``ally_windows``,
so it lives with the statements on that table rather than in core/db/.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from allyapi.allies.models import AllyWindow
from allyapi.core.db.models import table_of

WINDOWS = table_of(AllyWindow)


async def replace_windows(
    session: AsyncSession, ally_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> None:
    """Delete the ally's window rows and insert ``rows`` (in the caller's transaction)."""
    await session.execute(sa.delete(WINDOWS).where(WINDOWS.c.ally_id == ally_id))
    if rows:
        await session.execute(sa.insert(WINDOWS), rows)


async def org_zones(connection: AsyncConnection | AsyncSession, org_id: str) -> list[str]:
    """The zones the org's windows are published in: usually a handful."""
    query = sa.select(WINDOWS.c.timezone).where(WINDOWS.c.org_id == org_id).distinct()
    return [row[0] for row in (await connection.execute(query)).all()]


class available_in(ColumnElement[bool]):
    """The ally (``ally_id``, a column) has a window containing one of ``moments``.

    ``moments`` is a bound JSON text, ``[{"tz": zone, "d": weekday, "m": minute}, ...]``, so a
    statement using this element is compiled once and reused with each instant's list.
    """

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [
        ("ally_id", InternalTraversal.dp_clauseelement),
        ("moments", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, ally_id: Any, moments: sa.BindParameter[str]) -> None:
        self.ally_id = ally_id
        self.moments = moments


@compiles(available_in, "postgresql")
def _available_pg(element: available_in, compiler: Any, **kw: Any) -> str:
    moments = compiler.process(element.moments, **kw)
    ally_id = compiler.process(element.ally_id, **kw)
    return (
        "EXISTS (SELECT 1 FROM ally_windows AS w JOIN jsonb_to_recordset("  # noqa: S608
        f"CAST({moments} AS jsonb)) AS at(tz text, d integer, m integer) "
        "ON w.timezone = at.tz AND w.weekday = at.d "
        f"AND w.start_minute <= at.m AND w.end_minute > at.m WHERE w.ally_id = {ally_id})"
    )


@compiles(available_in)
def _available_default(element: available_in, compiler: Any, **kw: Any) -> str:
    moments = compiler.process(element.moments, **kw)
    ally_id = compiler.process(element.ally_id, **kw)
    tz, day, minute = (f"json_extract(at.value, '$.{name}')" for name in ("tz", "d", "m"))
    return (
        f"EXISTS (SELECT 1 FROM ally_windows AS w, json_each({moments}) AS at "  # noqa: S608
        f"WHERE w.ally_id = {ally_id} AND w.timezone = {tz} AND w.weekday = {day} "
        f"AND w.start_minute <= {minute} AND w.end_minute > {minute})"
    )
