"""The release rule: which rows a cell's figures may be computed from.

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

The rule is written in SQL, window functions over a source's rows, in
aggregates/release_repository.py (``released``); this module names the levels of cells it
ranks and which step released a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from allyapi.aggregates.marks import Kind


@dataclass(frozen=True)
class Level:
    """One level of cells: the columns that name a cell, the kind of cell, and its k."""

    partition: tuple[str, ...]
    kind: Kind
    k: int


def chunk_of(rank: int, is_first: bool, k: int) -> int:
    """Which step of k released a row: its person's step, or the next one for a repeat."""
    people = rank if is_first else rank + 1
    return (people + k - 1) // k
