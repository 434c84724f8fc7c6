"""Contact-request schemas: one body per action, one response shape per audience
(docs/privacy.md, P2, P3).

- ``...RequesterView``: everything the requester typed, the ally's public profile, resources.
- ``...AllyView``: what P3 lets the assigned ally see; alias and contact detail only after
  accepting and never for an anonymous request. Never ``requester_ref`` or anything derived.
- Summaries (lists) carry no protected content, so listing is never an access to log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, RootModel, StringConstraints, Tag, field_validator

from allyapi.allies.schemas import AllyPublic, canonical_language
from allyapi.contact_requests.models import RequestStatus
from allyapi.core.http.errors import Problem
from allyapi.core.http.schemas import LanguageTag, PublicSchema, RequestBody
from allyapi.resources.schemas import ResourcePublic

MESSAGE_MAX = 4000
CONTACT_DETAIL_MAX = 300
ALIAS_MAX = 80
MAX_DEBRIEF_RESOURCES = 10

# Topic is stored in clear for statistics, so it is a tag, not prose: one word of letters,
# digits, "-" and "_" (no spaces, so no sentences), matched case-insensitively against the
# allies' topics.
TopicTag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$"),
]
MessageText = Annotated[str, StringConstraints(min_length=1, max_length=MESSAGE_MAX)]


class Urgency(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"


class Channel(StrEnum):
    thread = "thread"
    chat = "chat"
    email = "email"
    phone = "phone"
    video = "video"
    in_person = "in_person"


class DeclineReason(StrEnum):
    at_capacity = "at_capacity"
    outside_expertise = "outside_expertise"
    conflict_of_interest = "conflict_of_interest"
    unavailable = "unavailable"
    other = "other"


class Author(StrEnum):
    requester = "requester"
    ally = "ally"


class _ContactRequestFields(RequestBody):
    ally_id: uuid.UUID | None = Field(
        default=None, description="A listed ally; omit to be matched with the best suggestion"
    )
    topic: TopicTag
    urgency: Urgency = Urgency.normal
    language: LanguageTag | None = Field(default=None, description="BCP 47, e.g. en-GB")
    preferred_channel: Channel | None = None
    alias: str | None = Field(default=None, min_length=1, max_length=ALIAS_MAX)
    message: MessageText

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return value.lower()

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else canonical_language(value)


class NamedContactRequestCreate(_ContactRequestFields):
    """A request the ally may answer directly: after accepting, they see the alias and the
    contact detail typed here."""

    contact_detail: str | None = Field(default=None, min_length=1, max_length=CONTACT_DETAIL_MAX)
    anonymous: Literal[False] = False


class AnonymousContactRequestCreate(_ContactRequestFields):
    """``anonymous: true``: answered through the request's message thread only, so it has no
    ``contact_detail`` (sending one is a 422) and the ally never sees the alias."""

    anonymous: Literal[True]

    @property
    def contact_detail(self) -> None:
        return None


def _variant(body: Any) -> str:
    anonymous = body.get("anonymous") if isinstance(body, dict) else getattr(body, "anonymous", 0)
    return "anonymous" if anonymous is True else "named"


# Two shapes rather than one with an if/then rule: generated clients keep a union of two object
# types (``anonymous: true`` has no ``contact_detail``), where they silently drop if/then.
class ContactRequestCreate(
    RootModel[
        Annotated[
            Annotated[NamedContactRequestCreate, Tag("named")]
            | Annotated[AnonymousContactRequestCreate, Tag("anonymous")],
            Discriminator(_variant),
        ]
    ]
):
    """A request for contact: named (the default; the ally sees the alias and contact detail
    after accepting) or ``anonymous: true`` (answered through the message thread only, so no
    ``contact_detail``)."""


ContactRequestBody = NamedContactRequestCreate | AnonymousContactRequestCreate


class DeclineBody(RequestBody):
    reason: DeclineReason


class CompleteBody(RequestBody):
    """The ally's debrief; ``wellbeing`` (1–5) is reported only in aggregate."""

    signposted: bool
    resource_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_DEBRIEF_RESOURCES,
        description="Resources of the organisation the ally pointed to",
    )
    follow_up: bool = False
    wellbeing: int = Field(ge=1, le=5)


class MessageCreate(RequestBody):
    body: MessageText


class ContactRequestRequesterView(PublicSchema):
    id: uuid.UUID
    status: RequestStatus
    ally_id: uuid.UUID | None = None
    ally: AllyPublic | None = None
    topic: str = Field(max_length=64)
    urgency: Urgency
    language: str | None = Field(default=None, max_length=35)
    preferred_channel: Channel | None = None
    anonymous: bool
    message: str | None = Field(
        default=None, max_length=MESSAGE_MAX, description="null once purged after retention"
    )
    contact_detail: str | None = Field(default=None, max_length=CONTACT_DETAIL_MAX)
    alias: str | None = Field(default=None, max_length=ALIAS_MAX)
    resources: list[ResourcePublic] | None = Field(
        default=None, max_length=20, description="Crisis and professional help (urgency high)"
    )
    created_at: datetime
    expires_at: datetime | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None


class ContactRequestRequesterSummary(PublicSchema):
    id: uuid.UUID
    status: RequestStatus
    ally_id: uuid.UUID | None = None
    ally: AllyPublic | None = None
    topic: str = Field(max_length=64)
    urgency: Urgency
    created_at: datetime
    expires_at: datetime | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None


class ContactRequestAllySummary(PublicSchema):
    """A request assigned to the caller, without protected content (no access to log)."""

    id: uuid.UUID
    status: RequestStatus
    topic: str = Field(max_length=64)
    urgency: Urgency
    language: str | None = Field(default=None, max_length=35)
    preferred_channel: Channel | None = None
    anonymous: bool
    created_at: datetime
    expires_at: datetime | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None


class ContactRequestAllyView(ContactRequestAllySummary):
    """P3: what the requester chose to share with the assigned ally."""

    message: str | None = Field(default=None, max_length=MESSAGE_MAX)
    alias: str | None = Field(
        default=None, max_length=ALIAS_MAX, description="Only after accepting; never if anonymous"
    )
    contact_detail: str | None = Field(
        default=None,
        max_length=CONTACT_DETAIL_MAX,
        description="Only after accepting; never if anonymous",
    )


class MessagePublic(PublicSchema):
    id: uuid.UUID
    author: Author
    body: str = Field(max_length=MESSAGE_MAX)
    created_at: datetime


class AccessLogEntryPublic(PublicSchema):
    accessed_at: datetime
    accessor: str = Field(max_length=100, description="The ally's display name")
    action: str = Field(max_length=32)


class ContactRequestProblem(Problem):
    """The create's 409, with the RFC 9457 extension member that says what to do next."""

    alternatives: list[AllyPublic] | None = Field(
        default=None,
        max_length=3,
        description="The chosen ally is not accepting or is at capacity: up to 3 listed allies "
        "with room, ranked as suggestions are",
    )
    resources: list[ResourcePublic] | None = Field(
        default=None,
        max_length=100,
        description="No listed ally has room: crisis, EAP and professional help for the "
        "caller's country and global ones",
    )
