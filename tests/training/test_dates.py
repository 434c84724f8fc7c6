from __future__ import annotations

from datetime import date

import pytest

from allyapi.training.dates import RecordStatus, add_months, expires_on, record_status


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 15), 1, date(2024, 2, 15)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year: clamped to Feb 29
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 8, 31), 6, date(2025, 2, 28)),
        (date(2024, 11, 30), 2, date(2025, 1, 30)),
        (date(2024, 12, 31), 12, date(2025, 12, 31)),
        (date(2020, 5, 10), 240, date(2040, 5, 10)),
    ],
)
def test_add_months_clamps_to_month_end(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


def test_expires_on_none_means_never() -> None:
    assert expires_on(date(2024, 1, 31), None) is None
    assert expires_on(date(2024, 1, 31), 1) == date(2024, 2, 29)


def test_record_status_boundaries() -> None:
    today = date(2025, 6, 1)
    assert record_status(None, today) is RecordStatus.valid
    assert (
        record_status(date(2025, 6, 1), today) is RecordStatus.expired
    )  # current while today < expiry
    assert record_status(date(2025, 6, 2), today) is RecordStatus.expiring
    assert record_status(date(2025, 7, 31), today) is RecordStatus.expiring  # day 60
    assert record_status(date(2025, 8, 1), today) is RecordStatus.valid  # day 61
