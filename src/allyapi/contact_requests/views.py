"""Table rows → the response each audience may see; the only place sealed fields are opened.

docs/privacy.md, P3 is decided here, once: the assigned ally sees topic, urgency, language,
channel, anonymous and the message; alias and contact detail only once the request was
accepted and never when the request is anonymous. No view has ``requester_ref`` (P2).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from allyapi.allies.models import Ally
from allyapi.allies.schemas import AllyPublic
from allyapi.contact_requests.models import ContactMessage, ContactRequest, RequestStatus
from allyapi.contact_requests.schemas import (
    ContactRequestAllySummary,
    ContactRequestAllyView,
    ContactRequestRequesterSummary,
    ContactRequestRequesterView,
    MessagePublic,
)
from allyapi.core.privacy.crypto import Cipher, DataKey, aad_for, open_record_value
from allyapi.resources.models import Resource
from allyapi.resources.schemas import ResourcePublic

REQUESTS = "contact_requests"
MESSAGES = "contact_messages"
_COMMON = ("id", "status", "topic", "urgency", "created_at", "expires_at", "accepted_at")
SEALED_FIELDS = ("message", "contact_detail", "alias")  # a request's free text, sealed


@dataclass(frozen=True)
class NewRequest:
    """A request as the create path inserts it: the fields its requester view needs, without
    an ORM entity (building one cost about a millisecond per create, bench/RESULTS.md)."""

    id: uuid.UUID
    org_id: str
    ally_id: uuid.UUID
    topic: str
    urgency: str
    language: str | None
    preferred_channel: str | None
    anonymous: bool
    created_at: datetime
    expires_at: datetime
    message_sealed: str | None
    contact_detail_sealed: str | None
    alias_sealed: str | None
    status: str = RequestStatus.pending
    accepted_at: datetime | None = None
    closed_at: datetime | None = None

    def row(self, requester_ref: str) -> dict[str, Any]:
        """Every NOT NULL column of ``contact_requests``; the others start NULL."""
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "requester_ref": requester_ref,
            "version": 1,
            "updated_at": self.created_at,
            "declined_by": [],
            "signposted_resource_ids": [],
        }

    def __repr__(self) -> str:
        return f"NewRequest(id={self.id})"


class Views:
    """``key``: the request's own data key (contact_requests/sealing.py), None when it has
    none (sealed the older way, directly under ``ring``; or erased or purged)."""

    def __init__(self, ring: Cipher) -> None:
        self.ring = ring

    def seal_new(
        self, key: DataKey, request_id: uuid.UUID, field: str, plaintext: str | None
    ) -> str | None:
        return key.seal_optional(plaintext, aad_for(REQUESTS, request_id, field))

    def open(
        self, request: ContactRequest | NewRequest, field: str, key: DataKey | None
    ) -> str | None:
        sealed: str | None = getattr(request, f"{field}_sealed")
        if sealed is None:
            return None
        return open_record_value(sealed, aad_for(REQUESTS, request.id, field), self.ring, key)

    def seal_message(self, message: ContactMessage, body: str, key: DataKey) -> None:
        message.body_sealed = key.seal(body, aad_for(MESSAGES, message.id, "body"))

    def message(self, message: ContactMessage, key: DataKey | None) -> MessagePublic:
        aad = aad_for(MESSAGES, message.id, "body")
        body = open_record_value(message.body_sealed, aad, self.ring, key)
        return MessagePublic(
            id=message.id, author=message.author, body=body, created_at=message.created_at
        )

    def for_requester(
        self,
        request: ContactRequest | NewRequest,
        ally: Ally | dict[str, Any] | None,
        resources: Sequence[Resource] | None,
        key: DataKey | None,
        sent: Mapping[str, str | None] | None = None,
    ) -> ContactRequestRequesterView:
        """``sent``: a new request's free text as its requester sent it this very request
        (``SEALED_FIELDS``), answered as is: opening what was sealed a moment ago is work
        the create need not do."""

        def free_text(field: str) -> str | None:
            return sent[field] if sent is not None else self.open(request, field, key)

        return ContactRequestRequesterView.model_validate(
            {
                **{name: getattr(request, name) for name in _COMMON},
                "ally_id": request.ally_id,
                "ally": _public(ally),
                "language": request.language,
                "preferred_channel": request.preferred_channel,
                "anonymous": request.anonymous,
                "message": free_text("message"),
                "contact_detail": free_text("contact_detail"),
                "alias": free_text("alias"),
                "resources": None
                if resources is None
                else [ResourcePublic.model_validate(r) for r in resources],
                "closed_at": request.closed_at,
            }
        )

    def requester_summary(
        self, request: ContactRequest, ally: Ally | None
    ) -> ContactRequestRequesterSummary:
        return ContactRequestRequesterSummary.model_validate(
            {
                **{name: getattr(request, name) for name in _COMMON},
                "ally_id": request.ally_id,
                "ally": _public(ally),
                "closed_at": request.closed_at,
            }
        )

    def ally_summary(self, request: ContactRequest) -> ContactRequestAllySummary:
        return ContactRequestAllySummary.model_validate(request)

    def for_ally(self, request: ContactRequest, key: DataKey | None) -> ContactRequestAllyView:
        shares_contact = request.accepted_at is not None and not request.anonymous
        return ContactRequestAllyView.model_validate(
            {
                **ContactRequestAllySummary.model_validate(request).model_dump(),
                "message": self.open(request, "message", key),
                "alias": self.open(request, "alias", key) if shares_contact else None,
                "contact_detail": (
                    self.open(request, "contact_detail", key) if shares_contact else None
                ),
            }
        )


def _public(ally: Ally | dict[str, Any] | None) -> AllyPublic | None:
    return None if ally is None else AllyPublic.model_validate(ally)
