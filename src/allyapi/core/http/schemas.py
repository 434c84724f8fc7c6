"""Base classes for API schemas: request bodies forbid unknown fields; pages are bounded."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import cache
from types import UnionType
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from allyapi.core.http.pagination import MAX_CURSOR_CHARS

T = TypeVar("T")


class RequestBody(BaseModel):
    """Every request body: unknown fields are a 422, so nobody mass-assigns ``status``.

    Booleans and integers must be JSON booleans and integers: pydantic's lax mode would read
    ``0`` or ``"yes"`` as ``false``/``true`` and ``"3"`` as ``3``, which the contract
    does not allow (found by Schemathesis). Strings, dates, enums and numbers keep the usual
    JSON parsing.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _json_scalar_types(cls, value: Any, info: ValidationInfo) -> Any:
        if _has_nul(value):  # PostgreSQL text cannot hold it: a 422, not a 500 (Schemathesis)
            raise ValueError("must not contain a NUL character")
        kind = _scalar_kinds(cls).get(info.field_name or "")
        if value is None or kind is None:
            return value
        if kind is bool and not isinstance(value, bool):
            raise ValueError("must be true or false")
        # JSON Schema counts 2.0 as an integer; pydantic refuses 2.5 itself.
        if kind is int and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError("must be an integer")
        return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(isinstance(item, str) and "\x00" in item for item in value)
    return False


@cache
def _scalar_kinds(model: type[BaseModel]) -> dict[str, type]:
    """Field name -> bool or int, for fields that are exactly one of those."""
    kinds: dict[str, type] = {}
    for name, field in model.model_fields.items():
        kind = _kind(field.annotation)
        if kind is not None:
            kinds[name] = kind
    return kinds


def _kind(annotation: Any) -> type | None:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind(get_args(annotation)[0])
    if origin in (Union, UnionType):
        found = {_kind(arg) for arg in get_args(annotation)} - {None}
        return found.pop() if len(found) == 1 else None
    return annotation if annotation in (bool, int) else None


class PublicSchema(BaseModel):
    """Every response body: built from attributes, fields listed explicitly."""

    model_config = ConfigDict(from_attributes=True)


class Page(PublicSchema, Generic[T]):
    items: list[T] = Field(max_length=100)
    next_cursor: str | None = Field(default=None, max_length=MAX_CURSOR_CHARS)


# A count of rows: bounded by the database's 32-bit integers (the contract states it).
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LanguageTag = Annotated[
    str,
    StringConstraints(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"),
]


def _iso_date_text(value: Any) -> Any:
    """Only ``YYYY-MM-DD``: lax parsing would read ``0`` as 1970-01-01 (found by Schemathesis)."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]

# The days a query may name (report and summary ranges). Their calendar arithmetic snaps a
# range out to whole weeks or months and reaches a year back for defaults: within this range
# it never leaves the years 1..9999 that dates can hold (docs/validation.md).
QUERY_DATE_MIN = date(1970, 1, 1)
QUERY_DATE_MAX = date(9998, 12, 31)


def _query_date_in_range(value: date) -> date:
    if not QUERY_DATE_MIN <= value <= QUERY_DATE_MAX:
        raise ValueError(f"must be a day from {QUERY_DATE_MIN} to {QUERY_DATE_MAX}")
    return value


QueryDate = Annotated[
    IsoDate,
    AfterValidator(_query_date_in_range),
    # JSON Schema's format-range keywords (ajv-formats), so tools can generate within it.
    Field(
        json_schema_extra={
            "formatMinimum": QUERY_DATE_MIN.isoformat(),
            "formatMaximum": QUERY_DATE_MAX.isoformat(),
        }
    ),
]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
# The instants a query may name (availability, the audit trail's range): any plan or history
# fits, and converting one to any time zone stays inside the calendar.
QUERY_INSTANT_MIN = datetime(2000, 1, 1, tzinfo=UTC)
QUERY_INSTANT_END = datetime(2100, 1, 1, tzinfo=UTC)


def _rfc3339_text(value: Any) -> Any:
    """Only RFC 3339 with an offset: lax parsing would read ``0.5`` as a Unix time."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 instant with its offset, e.g. 2026-03-29T09:30:00Z")
    return value


def _instant_in_range(value: datetime) -> datetime:
    try:
        inside = QUERY_INSTANT_MIN <= value < QUERY_INSTANT_END
    except OverflowError:  # an offset that takes the instant outside the calendar
        inside = False
    if not inside:
        raise ValueError("must be from 2000-01-01T00:00:00Z to before 2100-01-01T00:00:00Z")
    return value.astimezone(UTC)


QueryInstant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_instant_in_range),
    Field(
        json_schema_extra={
            "formatMinimum": "2000-01-01T00:00:00Z",
            "formatExclusiveMaximum": "2100-01-01T00:00:00Z",
        }
    ),
]
CountryCode = Annotated[str, StringConstraints(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]
