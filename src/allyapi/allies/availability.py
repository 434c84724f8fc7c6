"""Who is available at an instant: weekly windows in each ally's own time zone, in SQL.

An ally publishes windows as ``{weekday, start, end}`` in their own ``timezone``. Whether an
instant falls in one depends on the ally's zone *at that instant* (daylight-saving time moves
a zone's offset twice a year), so windows cannot be stored once in UTC. Instead:

- each window is stored as a row ``(ally_id, weekday, start_minute, end_minute, timezone)``
  (``AllyWindow``), rewritten whenever the profile's availability or timezone changes;
- for an instant, the service asks which zones the org's windows use (a handful), converts
  the instant to each zone's local weekday and minute with ``zoneinfo`` (which knows every
  transition), and binds that short list as one JSON parameter;
- the directory and the suggestions test ``EXISTS`` a window of the ally whose zone is one of
  those, on that weekday, with ``start <= minute < end``.

So the filter is part of the SQL statement: keyset pagination and page sizes are exact, and
the statement is built once and reused with new bound values. A local time that does not
exist (the hour skipped in spring) belongs to no window; one that happens twice (autumn) is
inside a window both times. An ally without a timezone has no rows: never "available".
Windows end at ``24:00`` at the latest; one that runs past midnight is two windows, one on
each day (docs/allies.md, "Availability").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from allyapi.allies.models import AllyWindow
from allyapi.core.db.models import table_of

WINDOWS = table_of(AllyWindow)
MINUTES_PER_DAY = 1440


def minute_of(clock: str) -> int:
    """``"09:30"`` → 570; ``"24:00"`` (the end of the day) → 1440."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def window_rows(
    org_id: str, ally_id: uuid.UUID, timezone: str | None, windows: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of an ally's windows: none without a timezone; duplicates once."""
    if timezone is None:
        return []
    rows: dict[tuple[int, int, int], dict[str, Any]] = {}
    for window in windows:
        start, end = minute_of(window["start"]), minute_of(window["end"])
        if start < end:
            key = (int(window["weekday"]), start, end)
            rows[key] = {
                "ally_id": ally_id,
                "weekday": key[0],
                "start_minute": start,
                "end_minute": end,
                "org_id": org_id,
                "timezone": timezone,
            }
    return list(rows.values())


async def store_windows(
    session: AsyncSession,
    org_id: str,
    ally_id: uuid.UUID,
    timezone: str | None,
    windows: Iterable[Mapping[str, Any]],
) -> None:
    """Replace the ally's window rows (same transaction as the profile write)."""
    await session.execute(sa.delete(WINDOWS).where(WINDOWS.c.ally_id == ally_id))
    rows = window_rows(org_id, ally_id, timezone, windows)
    if rows:
        await session.execute(sa.insert(WINDOWS), rows)


def local_times(zones: Iterable[str], instant: datetime) -> list[dict[str, Any]]:
    """The local ISO weekday and minute of ``instant`` in each zone (unknown names skipped)."""
    moments = []
    for zone in sorted(set(zones)):
        try:
            local = instant.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            continue
        moments.append({"tz": zone, "d": local.isoweekday(), "m": local.hour * 60 + local.minute})
    return moments


async def org_zones(connection: AsyncConnection | AsyncSession, org_id: str) -> list[str]:
    """The zones the org's windows are published in: usually a handful."""
    query = sa.select(WINDOWS.c.timezone).where(WINDOWS.c.org_id == org_id).distinct()
    return [row[0] for row in (await connection.execute(query)).all()]


async def moments_param(
    connection: AsyncConnection | AsyncSession, org_id: str, instant: datetime
) -> str:
    """The JSON list ``available_in`` binds: the instant in every zone the org uses."""
    return json.dumps(local_times(await org_zones(connection, org_id), instant))


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
