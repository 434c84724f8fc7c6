"""Who counts as a new person in which cell, decided once, when a contribution arrives.

A *cell* is one bucket of one breakdown: a week, a week and an urgency, a month and a topic
group, a month and an ally... Each kind of cell has a bit position. When a contribution
arrives (aggregates/arrivals.py) it gets a ``marks`` integer saying, per kind of cell it
belongs to, whether it was the first contribution of its person there (``FIRST``) or was
*absorbed* (``ABSORBED``, see :func:`mark`). Those bits never change afterwards, so neither
does the order in which people entered a cell, whatever later happens to the rows: an
erasure replacing the requester's reference, a purge cutting dates to the day, an ally
profile deleted. The release rule (aggregates/release.py) reads only ``seq`` and ``marks``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum


class Kind(IntEnum):
    """Kinds of cells. Request rows use the first six; feedback adds the ally cells;
    programme feedback uses its own two (its rows are marked separately)."""

    week = 0
    week_urgency = 1
    week_topic = 2
    month = 3
    month_urgency = 4
    month_topic = 5
    month_ally = 6
    month_ally_comments = 7
    month_category = 8
    month_category_comments = 9


def first(kind: Kind) -> int:
    return 1 << kind


def absorbed(kind: Kind) -> int:
    return 1 << (10 + kind)


ABSORBED_ANY = sum(absorbed(kind) for kind in Kind)
COMMENTED = 1 << 20  # the row had a comment when it arrived

Cell = tuple[Kind, Hashable]


@dataclass(frozen=True)
class Arrival:
    """One contribution about to arrive: its person (None: unknown, e.g. already erased)
    and the cell it belongs to in each kind."""

    person: str | None
    cells: Mapping[Kind, Hashable]
    commented: bool = False


@dataclass(frozen=True)
class Arrived:
    """A contribution that arrived earlier, as it is now (``person`` None once erased)."""

    person: str | None
    cells: Mapping[Kind, Hashable]
    marks: int


@dataclass
class CellHistory:
    """What the cells touched by a batch already hold."""

    seen: set[tuple[Cell, str]] = field(default_factory=set)
    orphans: Counter[Cell] = field(default_factory=Counter)
    absorbed: Counter[Cell] = field(default_factory=Counter)

    @classmethod
    def of(cls, rows: Iterable[Arrived]) -> CellHistory:
        history = cls()
        for row in rows:
            for kind, key in row.cells.items():
                cell = (kind, key)
                if row.person is None:
                    # Erased: if it counted as a person, someone may come back unrecognised.
                    history.orphans[cell] += bool(row.marks & first(kind))
                    continue
                history.seen.add((cell, row.person))
                # A still-known person standing in for an orphan (once erased too, the
                # orphan can stand for the next newcomer again).
                history.absorbed[cell] += bool(row.marks & absorbed(kind))
        return history


def mark(arrivals: Iterable[Arrival], history: CellHistory) -> list[int]:
    """The marks of each arrival, in arrival order (``history`` is updated as it goes).

    - A person's first contribution to a cell is ``FIRST``; later ones are not (one person
      never counts twice, however often they contribute).
    - A contribution whose person is unknown (erased before it arrived) is never ``FIRST``.
    - *Orphans*: a person counted in a cell whose contribution was erased since can no
      longer be recognised; if they contribute again they would look new and count twice
      (create, erase, create again: padding). So each orphan *absorbs* the next person who
      looks new in that cell: that person is not counted (``ABSORBED``) for as long as their
      contribution stays; erased in turn, the orphan absorbs the next newcomer. An honest
      erasure therefore costs the cell a person at most; no erasure ever adds one.
    """
    marks = []
    for arrival in arrivals:
        value = COMMENTED if arrival.commented else 0
        for kind, key in arrival.cells.items():
            cell = (kind, key)
            if arrival.person is None or (cell, arrival.person) in history.seen:
                continue
            history.seen.add((cell, arrival.person))
            if history.orphans[cell] > history.absorbed[cell]:
                history.absorbed[cell] += 1
                value |= absorbed(kind)
            else:
                value |= first(kind)
        marks.append(value)
    return marks
