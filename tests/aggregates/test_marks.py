"""Who counts as a new person in a cell: decided once, at arrival (aggregates/marks.py)."""

from __future__ import annotations

from allyapi.aggregates.marks import (
    COMMENTED,
    Arrival,
    Arrived,
    CellHistory,
    Kind,
    absorbed,
    first,
    mark,
)

WEEK = {Kind.week: "W1"}


def test_a_person_is_first_once_per_cell() -> None:
    history = CellHistory()
    marks = mark(
        [
            Arrival("ann", WEEK),
            Arrival("ann", WEEK),
            Arrival("bob", {Kind.week: "W1", Kind.week_topic: ("W1", "grief")}),
            Arrival("ann", {Kind.week: "W1", Kind.week_topic: ("W1", "grief")}),
        ],
        history,
    )
    assert marks[0] == first(Kind.week)
    assert marks[1] == 0
    assert marks[2] == first(Kind.week) | first(Kind.week_topic)
    assert marks[3] == first(Kind.week_topic)  # new in the grief group, not in the week


def test_people_seen_earlier_are_not_new_again() -> None:
    history = CellHistory.of([Arrived("ann", WEEK, first(Kind.week))])
    assert mark([Arrival("ann", WEEK), Arrival("bob", WEEK)], history) == [0, first(Kind.week)]


def test_an_unknown_person_is_never_new() -> None:
    assert mark([Arrival(None, WEEK, commented=True)], CellHistory()) == [COMMENTED]


def test_an_erased_person_absorbs_the_next_newcomer_once() -> None:
    """Create, erase, create again: the second request must not count as a second person."""
    history = CellHistory.of([Arrived(None, WEEK, first(Kind.week))])  # erased since
    marks = mark([Arrival("ann", WEEK), Arrival("bob", WEEK), Arrival("ann", WEEK)], history)
    assert marks == [absorbed(Kind.week), first(Kind.week), 0]


def test_repeated_erasure_never_pads_a_cell() -> None:
    """However often one person creates and erases, the cell counts them at most once."""
    counted = 0
    arrived: list[Arrived] = []
    for _ in range(10):
        [marks] = mark([Arrival("padder", WEEK)], CellHistory.of(arrived))
        counted += bool(marks & first(Kind.week))
        arrived.append(Arrived(None, WEEK, marks))  # ... and erased before the next round
    assert counted == 1


def test_absorptions_are_remembered_per_cell() -> None:
    history = CellHistory.of(
        [
            Arrived(None, WEEK, first(Kind.week)),
            Arrived("cy", WEEK, absorbed(Kind.week)),  # the orphan already absorbed someone
            Arrived(None, {Kind.week: "W2"}, first(Kind.week)),
        ]
    )
    assert mark([Arrival("dee", WEEK), Arrival("eve", {Kind.week: "W2"})], history) == [
        first(Kind.week),
        absorbed(Kind.week),
    ]
