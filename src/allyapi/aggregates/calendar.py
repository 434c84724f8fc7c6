"""Which topics have a group of their own in which period (docs/aggregates.md).

A topic groups the periods that *begin* while it is listed: added on a Wednesday, it has its
own group from the next Monday (weeks) or the next first of a month (months); removed on a
Wednesday, it keeps its group until the current period ends. So the groups of a period that
has begun never change, whatever a coordinator does later: no one can regroup released
figures and compare before with after. Everything else a request names is ``(other)``.

An organisation that never defined a list uses ``DEFAULT_TOPICS`` for every period. The first
change a coordinator makes stores those defaults as listed since 1970, so nothing that was
grouped before changes either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from allyapi.aggregates.buckets import Interval, as_instant, bucket_start, next_bucket
from allyapi.topics.defaults import DEFAULT_TOPICS, EPOCH
from allyapi.topics.service import Listing

OTHER = "(other)"


def _first_bucket_from(moment: datetime, interval: Interval) -> date:
    """The first bucket that begins at or after ``moment``."""
    start = bucket_start(moment.astimezone(UTC).date(), interval)
    return start if as_instant(start) >= moment else next_bucket(start, interval)


class TopicCalendar:
    def __init__(self, listings: Iterable[Listing]) -> None:
        self.listings = tuple(listings)
        self._keys: dict[tuple[Interval, date], list[str]] = {}

    @classmethod
    def defaults(cls) -> TopicCalendar:
        return cls(Listing(key, EPOCH, None) for key in DEFAULT_TOPICS)

    def _span(self, listing: Listing, interval: Interval) -> tuple[date, date | None]:
        """Bucket starts ``lo <= start < hi`` in which the listing has a group."""
        lo = _first_bucket_from(listing.listed_from, interval)
        hi = (
            None if listing.retired_at is None else _first_bucket_from(listing.retired_at, interval)
        )
        return lo, hi

    def keys(self, interval: Interval, start: date) -> list[str]:
        """The topic groups of the bucket beginning on ``start``, sorted, without ``(other)``."""
        cached = self._keys.get((interval, start))
        if cached is None:
            found = set()
            for listing in self.listings:
                lo, hi = self._span(listing, interval)
                if lo <= start and (hi is None or start < hi):
                    found.add(listing.key)
            cached = self._keys[(interval, start)] = sorted(found)
        return cached

    def group(self, topic: str, interval: Interval, day: date) -> str:
        return topic if topic in self.keys(interval, bucket_start(day, interval)) else OTHER

    def sql_group(self, topic: Any, moment: Any, interval: Interval, *, dated: bool) -> Any:
        """The same grouping as a SQL expression over a row's ``topic`` and its date (``dated``)
        or UTC timestamp column ``moment``."""
        spans: dict[tuple[date, date | None], list[str]] = defaultdict(list)
        for listing in self.listings:
            spans[self._span(listing, interval)].append(listing.key)
        if not spans:
            return sa.literal(OTHER)

        def bound(day: date) -> Any:
            return day if dated else as_instant(day)

        whens = []
        for (lo, hi), keys in sorted(spans.items(), key=lambda item: (item[0][0], str(item[0][1]))):
            condition = sa.and_(topic.in_(sorted(keys)), moment >= bound(lo))
            if hi is not None:
                condition = sa.and_(condition, moment < bound(hi))
            whens.append((condition, topic))
        return sa.case(*whens, else_=sa.literal(OTHER))


def calendar_of(listings: Sequence[Listing]) -> TopicCalendar:
    """An organisation's calendar: its stored rows, or the defaults when it has none."""
    return TopicCalendar(listings) if listings else TopicCalendar.defaults()
