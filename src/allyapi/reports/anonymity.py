"""k-anonymity for every aggregate the API returns (SPEC P6).

A *figure* is a value computed from a *population*: the number of distinct requesters whose
rows it is built from (distinct allies for ally wellbeing). A figure whose population is
below ``k`` is shown as ``{"value": null, "suppressed": true}``, zero included: telling 0
apart from "1 to k-1" would itself say that somebody asked.

Complementary suppression: when some cells of a breakdown (one period's groups) are hidden
but the breakdown's total is shown, the total minus the visible cells equals the hidden cells
combined. So we keep hiding the next-smallest visible cell until the hidden cells together
hold at least ``k`` people; what subtraction then reveals is an aggregate of ≥ k people,
which is exactly what a visible cell is allowed to be. Since every primary-suppressed cell
holds fewer than ``k``, at least two cells end up hidden whenever any is. Populations of
different groups are added up; a person counted in two groups of one period makes that sum an
over-estimate, which is why the rule is applied per period, where such overlap is rare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from allyapi.core.schemas import Count, PublicSchema


class Figure(PublicSchema):
    """One aggregate value, or ``null`` with ``suppressed: true`` (P6)."""

    value: Count | float | None = Field(
        description="The figure; null when suppressed or when there is nothing to compute"
    )
    suppressed: bool = Field(description="True when hidden to protect fewer than k people")


@dataclass(frozen=True)
class Measure:
    """A computed value before suppression, with the number of people behind it."""

    value: int | float | None
    population: int


EMPTY = Measure(value=None, population=0)


def shown(measure: Measure, k: int) -> bool:
    return measure.population >= k


def figure(measure: Measure, k: int, *, hidden: bool = False) -> Figure:
    if hidden or not shown(measure, k):
        return Figure(value=None, suppressed=True)
    return Figure(value=measure.value, suppressed=False)


def complementary(cells: Mapping[str, Measure], k: int, *, total_shown: bool) -> set[str]:
    """The keys to hide in one breakdown: primary (< k) plus complements (see module doc)."""
    hidden = {key for key, measure in cells.items() if not shown(measure, k)}
    if not hidden or not total_shown:
        return hidden
    visible = sorted(
        (key for key in cells if key not in hidden), key=lambda key: (cells[key].population, key)
    )
    while sum(cells[key].population for key in hidden) < k and visible:
        hidden.add(visible.pop(0))
    return hidden


def breakdown(
    cells: Mapping[str, Measure], total: Measure, k: int
) -> tuple[dict[str, Figure], Figure]:
    """Figures for one breakdown and its total, with complementary suppression applied."""
    total_figure = figure(total, k)
    hidden = complementary(cells, k, total_shown=not total_figure.suppressed)
    figures = {key: figure(measure, k, hidden=key in hidden) for key, measure in cells.items()}
    return figures, total_figure
