"""Webhook API shapes. The secret appears in the create response only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from allyapi.core.http.schemas import PublicSchema, RequestBody
from allyapi.webhooks.models import MAX_URL_CHARS

EventType = Literal[
    "ally.listed",
    "ally.unlisted",
    "training.expiring",
    "contact_request.assigned",
    "contact_request.expired",
]


class WebhookCreate(RequestBody):
    url: str = Field(
        min_length=8,
        max_length=MAX_URL_CHARS,
        pattern=r"^https?://",
        description="https URL to POST events to (http and private addresses only where "
        "ALLYAPI_WEBHOOK_ALLOW_PRIVATE is on, as in development)",
    )
    events: list[EventType] = Field(min_length=1, max_length=5)

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[EventType]) -> list[EventType]:
        return sorted(set(value))


class WebhookPublic(PublicSchema):
    id: uuid.UUID
    url: str = Field(max_length=MAX_URL_CHARS)
    events: list[EventType] = Field(max_length=5)
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        max_length=64,
        description="Signing secret (`whsec_` + base64). Shown once: store it now.",
    )


class DeliveryPublic(PublicSchema):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="The `webhook-id` header (the same for every retry)")
    event_type: EventType
    status: Literal["pending", "delivered", "failed"]
    attempts: int = Field(ge=0, le=1000)
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = Field(default=None, ge=100, le=599)
    last_error: str | None = Field(default=None, max_length=100)
    delivered_at: datetime | None = None
