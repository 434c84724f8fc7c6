"""Ally schemas: bodies forbid unknown fields; one response shape per audience.

- ``AllyPublic`` is exactly the public profile of docs/allies.md: never the ``subject_ref``,
  capacity used, status or requests.
- ``AllyCoordinatorView`` and ``AllyOwnView`` add the programme fields (status, capacity,
  listed, dates) for the coordinator and for the ally themselves.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from allyapi.allies.models import AllyStatus, PausedBy
from allyapi.core.http.schemas import Count, LanguageTag, PublicSchema, RequestBody, Tag

MAX_LANGUAGES = 10
MAX_TOPICS = 20
MAX_CHANNELS = 5
MAX_WINDOWS = 21
MAX_ROSTER = 50_000

DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Pronouns = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Bio = Annotated[str, StringConstraints(max_length=2000)]
# The contract names the format (a custom one: clients and fuzzers know the value must be a
# real IANA zone name, which no pattern can say).
TIMEZONE_FORMAT = "iana-time-zone"
TimezoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    WithJsonSchema(
        {
            "type": "string",
            "format": TIMEZONE_FORMAT,
            "minLength": 1,
            "maxLength": 64,
            "examples": ["Europe/London"],
        }
    ),
]
# Zero-padded 24-hour clock, so string order is time order.
ClockTime = Annotated[
    str,
    StringConstraints(min_length=5, max_length=5, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
]
# A window's end may also be ``24:00``: the end of the day (ISO 8601), so a window can run up
# to midnight; one that goes on past it is two windows, one on each day.
EndTime = Annotated[
    str,
    StringConstraints(
        min_length=5, max_length=5, pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
    ),
]


@cache
def _iana_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(value: str | None) -> str | None:
    """An IANA zone name (``Europe/London``); offsets and abbreviations are ambiguous."""
    if value is not None and value not in _iana_zones():
        raise ValueError("timezone must be an IANA time zone name such as Europe/London")
    return value


def canonical_language(tag: str) -> str:
    """BCP 47 case conventions (``en-GB``, ``zh-Hant-TW``): tags compare case-insensitively."""
    first, *rest = tag.split("-")
    parts = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())
        else:
            parts.append(part.lower())
    return "-".join(parts)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class ChannelKind(StrEnum):
    email = "email"
    phone = "phone"
    chat = "chat"
    video = "video"
    in_person = "in_person"


class ContactChannel(RequestBody):
    kind: ChannelKind
    detail: str | None = Field(default=None, min_length=1, max_length=200)


class AvailabilityWindow(RequestBody):
    """A weekly window in the ally's own ``timezone``; ISO weekday, 1 = Monday. ``end`` is
    exclusive and may be ``24:00``; a window past midnight is two windows."""

    weekday: int = Field(ge=1, le=7)
    start: ClockTime
    end: EndTime

    @model_validator(mode="after")
    def _start_before_end(self) -> AvailabilityWindow:
        if self.start >= self.end:
            raise ValueError(
                "start must be before end (end 24:00 is midnight; split windows that cross it)"
            )
        return self


class _ProfileFields(RequestBody):
    """Shared validation of the profile fields (create and update)."""

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return check_timezone(value)

    @field_validator("languages", check_fields=False)
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique([canonical_language(v) for v in value])

    @field_validator("topics", check_fields=False)
    @classmethod
    def _topics(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique([v.lower() for v in value])


class AllyCreate(_ProfileFields):
    display_name: DisplayName
    pronouns: Pronouns | None = None
    job_title: Label | None = None
    department: Label | None = None
    location: Label | None = None
    timezone: TimezoneName | None = Field(default=None, description="IANA name")
    languages: list[LanguageTag] = Field(default_factory=list, max_length=MAX_LANGUAGES)
    topics: list[Tag] = Field(default_factory=list, max_length=MAX_TOPICS)
    bio: Bio | None = None
    contact_channels: list[ContactChannel] = Field(default_factory=list, max_length=MAX_CHANNELS)
    availability: list[AvailabilityWindow] = Field(default_factory=list, max_length=MAX_WINDOWS)
    accepting: bool = True
    max_open_requests: int = Field(default=3, ge=1, le=50)


# Fields a PATCH may set but not clear: they have no meaningful "unset" value.
NOT_NULLABLE = (
    "display_name",
    "languages",
    "topics",
    "contact_channels",
    "availability",
    "accepting",
    "max_open_requests",
)


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """A NOT_NULLABLE field's contract has no ``default: null`` (``null`` would be refused)."""
    for name in NOT_NULLABLE:
        schema["properties"][name].pop("default", None)


class AllyUpdate(_ProfileFields):
    """Every field optional; ``null`` clears the optional text fields. Never ``status``."""

    # ``SkipJsonSchema[None]``: absent means "unchanged", but ``null`` is refused for the
    # NOT_NULLABLE fields, so the contract does not offer it.
    display_name: DisplayName | SkipJsonSchema[None] = None
    pronouns: Pronouns | None = None
    job_title: Label | None = None
    department: Label | None = None
    location: Label | None = None
    timezone: TimezoneName | None = Field(default=None, description="IANA name")
    languages: (
        Annotated[list[LanguageTag], Field(max_length=MAX_LANGUAGES)] | SkipJsonSchema[None]
    ) = None
    topics: Annotated[list[Tag], Field(max_length=MAX_TOPICS)] | SkipJsonSchema[None] = None
    bio: Bio | None = None
    contact_channels: (
        Annotated[list[ContactChannel], Field(max_length=MAX_CHANNELS)] | SkipJsonSchema[None]
    ) = None
    availability: (
        Annotated[list[AvailabilityWindow], Field(max_length=MAX_WINDOWS)] | SkipJsonSchema[None]
    ) = None
    accepting: bool | SkipJsonSchema[None] = None
    max_open_requests: Annotated[int, Field(ge=1, le=50)] | SkipJsonSchema[None] = None

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)

    @field_validator(*NOT_NULLABLE, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be changed but not cleared")
        return value


Sub = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RosterSync(RequestBody):
    """The HRIS roster: every ``sub`` still employed. Subs are opaque: no whitespace stripping."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    # At least one: an empty roster (a broken export) must not retire every ally at once.
    subs: list[Sub] = Field(min_length=1, max_length=MAX_ROSTER)


class RosterSyncResult(PublicSchema):
    retired: Count = Field(description="Allies retired by this call (leavers)")
    kept: Count = Field(description="Allies not retired who are on the roster")


class ContactChannelPublic(PublicSchema):
    kind: ChannelKind
    detail: str | None = Field(default=None, max_length=200)


class AvailabilityWindowPublic(PublicSchema):
    weekday: int = Field(ge=1, le=7)
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)


class AllyPublic(PublicSchema):
    """An ally's public profile: these fields and nothing else."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    id: uuid.UUID
    display_name: str = Field(max_length=100)
    pronouns: str | None = Field(default=None, max_length=40)
    job_title: str | None = Field(default=None, max_length=100)
    department: str | None = Field(default=None, max_length=100)
    location: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    languages: list[LanguageTag] = Field(max_length=MAX_LANGUAGES)
    topics: list[Tag] = Field(max_length=MAX_TOPICS)
    bio: str | None = Field(default=None, max_length=2000)
    contact_channels: list[ContactChannelPublic] = Field(max_length=MAX_CHANNELS)
    availability: list[AvailabilityWindowPublic] = Field(max_length=MAX_WINDOWS)
    accepting: bool


class AllyCoordinatorView(AllyPublic):
    """The public profile plus what the programme needs to run it."""

    status: AllyStatus
    paused_by: PausedBy | None = Field(
        default=None,
        description=(
            "Who paused a `paused` ally: `ally` (they may resume themselves) or `coordinator` "
            "(a suspension only a coordinator lifts); null in any other status"
        ),
    )
    max_open_requests: int = Field(ge=1, le=50)
    listed: bool = Field(
        description="Shown in the directory right now: active, accepting, required training current"
    )
    created_at: datetime
    approved_at: datetime | None = None


class AllyOwnView(AllyCoordinatorView):
    """The ally's own profile: the same fields the coordinator sees."""
