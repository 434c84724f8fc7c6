"""k-anonymity for every aggregate the API returns (docs/aggregates.md).

A *figure* is a value computed from a *population*: the people whose contributions it is
built from (distinct requesters; distinct allies for ally wellbeing). Figures are computed
under the release rule (aggregates/release.py), so a population is always 0 or a multiple
of ``k``; a figure whose population is below ``k`` is ``{"value": null, "suppressed":
true}``, zero included: telling 0 apart from "1 to k-1" would itself say that somebody asked.

Complementary suppression: when some cells of a breakdown (one period's groups) are hidden
but the breakdown's total is shown, the total minus the visible cells is what the hidden
cells hold *plus* the people a visible cell has not released yet (nested breakdowns: the
total has released them, the group not yet). We keep hiding the next-smallest visible cell
until that remainder holds at least ``k`` people, so subtraction only ever yields an
aggregate of ≥ k people, which is exactly what a visible cell is allowed to be. Populations
of different groups are added up; a person counted in two groups of one period makes that
sum an over-estimate, which is why the rule is applied per period, where such overlap is rare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from allyapi.core.http.schemas import Count, PublicSchema


class Figure(PublicSchema):
    """One aggregate value, or ``null`` with ``suppressed: true`` when too few people are in it."""

    value: Count | float | None = Field(
        description="The figure; null when suppressed or when there is nothing to compute"
    )
    suppressed: bool = Field(description="True when hidden to protect fewer than k people")


@dataclass(frozen=True)
class Measure:
    """A computed value before suppression, with the number of people behind it.

    ``candidates``: for a group cell of a nested breakdown, its people among those its
    period's total released (``population`` of them are in the group's own figure)."""

    value: int | float | None
    population: int
    candidates: int | None = None

    @property
    def held_back(self) -> int:
        """People in the total's release that this cell does not show (yet)."""
        people = self.population if self.candidates is None else self.candidates
        return max(0, people - self.population)

    @property
    def people(self) -> int:
        return self.population if self.candidates is None else max(self.candidates, self.population)


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

    def remainder() -> int:
        return sum(cells[key].people if key in hidden else cells[key].held_back for key in cells)

    while remainder() < k and visible:
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
