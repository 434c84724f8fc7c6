"""The release rule in SQL: which rows a cell's figures may be computed from.

A cell (one period, one group, one ally...) shows the figures of its first ⌊n/k⌋·k people in
arrival order, n being the people in it so far (docs/aggregates.md). In terms of the
arrival columns: ``seq`` orders a source's rows, and a row is its person's first in a cell
when ``marks`` has that cell kind's ``first`` bit (aggregates/marks.py). Then, per cell,

    rank = running count of first rows, in seq order     n = count of first rows
    step = (n // k) * k
    a row is released when  rank < step  or  (rank = step and it is a first row)

that is: every row up to and including the arrival of the step-th person, nothing after.
Between two steps nothing a cell shows can move; each step adds k new people.

A report's breakdowns are *nested*: a group cell (a topic, an urgency) is released from the
rows its period's total has released, so the total minus its visible groups is always made
of whole people who are in the total, and a group moves only when the total has moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from allyapi.aggregates.marks import Kind, first


@dataclass(frozen=True)
class Level:
    """One level of cells: the columns that name a cell, the kind of cell, and its k."""

    partition: tuple[str, ...]
    kind: Kind
    k: int


def _first_row(marks: Any, kind: Kind) -> Any:
    return sa.case((marks.op("&")(first(kind)) != 0, 1), else_=0)


def _ranked(base: Any, level: Level) -> tuple[Any, Any]:
    """``base`` with the rank and people columns of ``level``; and its step expression."""
    c = base.c
    flag = _first_row(c.marks, level.kind)
    cell = [c[name] for name in level.partition]
    ranked = sa.select(
        *c,
        flag.label("is_first"),
        sa.func.sum(flag).over(partition_by=cell, order_by=c.seq, rows=(None, 0)).label("rank"),
        sa.func.sum(flag).over(partition_by=cell).label("people"),
    ).subquery()
    return ranked, (ranked.c.people // level.k) * level.k


def _is_released(ranked: Any, step: Any) -> Any:
    r = ranked.c
    return sa.or_(r.rank < step, sa.and_(r.rank == step, r.is_first == 1))


def released(base: Any, outer: Level, inner: Level | None = None) -> Any:
    """The rows of ``base`` (a subquery with ``seq``, ``marks`` and the partition columns)
    that ``outer`` releases, with ``outer_step`` (people shown per outer cell). With an
    ``inner`` level also ``inner_in`` (1 when the inner cell shows the row), ``inner_step``
    and ``inner_people`` (the inner cell's people among the outer release), and the row's
    ``inner_rank`` and ``inner_first`` (for :func:`chunk_of`)."""
    names = [column.name for column in base.c]
    ranked, step = _ranked(base, outer)
    kept = (
        sa.select(*(ranked.c[name] for name in names), step.label("outer_step"))
        .where(_is_released(ranked, step))
        .subquery()
    )
    if inner is None:
        return kept
    inner_ranked, inner_step = _ranked(kept, inner)
    r = inner_ranked.c
    return sa.select(
        *(r[name] for name in [*names, "outer_step"]),
        inner_step.label("inner_step"),
        r.people.label("inner_people"),
        r.rank.label("inner_rank"),
        r.is_first.label("inner_first"),
        sa.case((_is_released(inner_ranked, inner_step), 1), else_=0).label("inner_in"),
    ).subquery()


def chunk_of(rank: int, is_first: bool, k: int) -> int:
    """Which step of k released a row: its person's step, or the next one for a repeat."""
    people = rank if is_first else rank + 1
    return (people + k - 1) // k
