"""How many generated examples the property-based tests ran, printed at the end of the run
(tests/security/conftest.py), so CI logs show the size of each sweep, not only that it passed."""

from __future__ import annotations

from collections import Counter

RUN: Counter[str] = Counter()


def count(name: str, n: int = 1) -> None:
    RUN[name] += n
