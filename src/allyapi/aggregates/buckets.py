"""Fixed calendar buckets: the only periods any aggregate is ever computed over.

Every report and feedback summary aligns its range to whole ISO weeks (Monday..Sunday, UTC)
or whole calendar months, snapping ``from`` back to the start of its bucket and ``to`` forward
to the end of its bucket. Two queries with overlapping ranges therefore produce the very same
cells for the buckets they share, and a partial bucket never exists, so subtracting one query
from another cannot isolate a few days (or one person) inside a bucket.

The bucket of a row is computed by the database in a ``GROUP BY`` (``date_trunc`` on
PostgreSQL, ``date``/``strftime`` on SQLite: :func:`bucket_of`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from allyapi.core.http.errors import InvalidInput


class Interval(StrEnum):
    week = "week"
    month = "month"


# The widest range one query may cover: bounds the cells (and the work) of one response.
MAX_SPAN_DAYS = {Interval.week: 2 * 366, Interval.month: 5 * 366}


def bucket_start(day: date, interval: Interval) -> date:
    if interval is Interval.week:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_bucket(start: date, interval: Interval) -> date:
    if interval is Interval.week:
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def label(start: date, interval: Interval) -> str:
    if interval is Interval.week:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{start.year}-{start.month:02d}"


def snap(first: date, last: date, interval: Interval) -> list[date]:
    """The starts of every bucket touching ``first..last`` (inclusive), in order.

    422 when ``last`` precedes ``first`` or the range is wider than the interval allows
    (two years of weeks, five years of months).
    """
    if last < first:
        raise InvalidInput("`to` is before `from`", loc=("query", "to"))
    if (last - first).days > MAX_SPAN_DAYS[interval]:
        limit = "2 years" if interval is Interval.week else "5 years"
        raise InvalidInput(
            f"a {interval.value}ly range covers at most {limit}", loc=("query", "to")
        )
    starts = [bucket_start(first, interval)]
    while next_bucket(starts[-1], interval) <= last:
        starts.append(next_bucket(starts[-1], interval))
    return starts


def as_instant(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def bucket_of(column: Any, interval: Interval, dialect: str) -> ColumnElement[Any]:
    """SQL for the bucket start of a UTC timestamp or date column (the one dialect helper).

    PostgreSQL: ``date_trunc`` (ISO weeks start on Monday) on the UTC wall clock.
    SQLite (stored as UTC text): ``date(x, 'weekday 0', '-6 days')`` is the Monday of x's ISO
    week (the next-or-same Sunday, minus six days); ``strftime('%Y-%m-01', x)`` the month.
    """
    if dialect == "postgresql":
        utc = sa.func.timezone("UTC", column) if _is_timestamp(column) else column
        return sa.cast(sa.func.date_trunc(interval.value, utc), sa.Date)
    if interval is Interval.week:
        return sa.func.date(column, "weekday 0", "-6 days")
    return sa.func.strftime("%Y-%m-01", column)


def _is_timestamp(column: Any) -> bool:
    return isinstance(getattr(column, "type", None), sa.DateTime | sa.types.TypeDecorator)


def as_date(value: Any) -> date:
    """A bucket value as the driver returned it (date on PostgreSQL, text on SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
