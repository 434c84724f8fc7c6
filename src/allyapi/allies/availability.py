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
  those, on that weekday, with ``start <= minute < end`` (``available_in``, a compiled
  construct of allies/availability_repository.py, with the statements on ``ally_windows``).

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

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from allyapi.allies.availability_repository import org_zones, replace_windows

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
    await replace_windows(session, ally_id, window_rows(org_id, ally_id, timezone, windows))


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


async def moments_param(
    connection: AsyncConnection | AsyncSession, org_id: str, instant: datetime
) -> str:
    """The JSON list ``available_in`` binds: the instant in every zone the org uses."""
    return json.dumps(local_times(await org_zones(connection, org_id), instant))
