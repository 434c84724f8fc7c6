"""Date rules of training records: derived expiry and the valid/expiring/expired status."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from enum import StrEnum

# A record that expires within this many days is "expiring" (the compliance view, README).
EXPIRING_WITHIN_DAYS = 60
# The earliest completion date accepted: older certificates are data-entry errors.
EARLIEST_COMPLETION = date(1970, 1, 1)


class RecordStatus(StrEnum):
    valid = "valid"
    expiring = "expiring"
    expired = "expired"


def add_months(start: date, months: int) -> date:
    """``start`` plus calendar months, the day clamped to the target month's end.

    2024-01-31 + 1 month is 2024-02-29; 2024-02-29 + 12 months is 2025-02-28.
    """
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def expires_on(completed_on: date, validity_months: int | None) -> date | None:
    """None when the course never expires; the record counts while today < expires_on."""
    if validity_months is None:
        return None
    return add_months(completed_on, validity_months)


def expiring_horizon(today: date) -> date:
    return today + timedelta(days=EXPIRING_WITHIN_DAYS)


def record_status(expiry: date | None, today: date) -> RecordStatus:
    """Dates only; whether a record is verified is a separate field."""
    if expiry is None:
        return RecordStatus.valid
    if expiry <= today:
        return RecordStatus.expired
    if expiry <= expiring_horizon(today):
        return RecordStatus.expiring
    return RecordStatus.valid
