"""The release rule (aggregates/release.py) in SQL: the rows a cell's figures may use.

Window functions over a source's rows, per cell: the running count of first rows in ``seq``
order is a row's rank, the count of first rows its cell's people; a row is released when its
rank is below the cell's step, or equals it and the row is a first row. Report and feedback
repositories aggregate what :func:`released` keeps.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from allyapi.aggregates.marks import Kind, first
from allyapi.aggregates.release import Level


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
    ``inner_rank`` and ``inner_first`` (for ``chunk_of`` in aggregates/release.py)."""
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
