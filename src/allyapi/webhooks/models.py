"""Webhook subscriptions, their outbox of deliveries, and the once-per-window markers.

A delivery row *is* the outbox entry and its log: written in the transaction of the change
that caused it (``outbox.enqueue``), claimed by the deliverer, and kept with its attempt
count, last status code and timestamps for ``GET /v1/webhooks/{id}/deliveries``. The body is
stored as the exact bytes that are signed and sent, so every retry sends the same message.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import ORG_ID_MAX, TenantRow, json_column, utc_column

EVENT_TYPES = (
    "ally.listed",
    "ally.unlisted",
    "training.expiring",
    "contact_request.assigned",
    "contact_request.expired",
)
# Events about one contact request: for integration clients only (the notification relay of
# an ally's tools), never for programme staff, whose reports suppress exactly this timing.
PER_REQUEST_EVENTS = frozenset(
    event for event in EVENT_TYPES if event.startswith("contact_request.")
)
MAX_URL_CHARS = 500
MAX_BODY_CHARS = 4000  # payloads carry ids and dates only


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookSubscription(TenantRow, table=True):
    __tablename__ = "webhook_subscriptions"

    url: str = Field(max_length=MAX_URL_CHARS)
    events: list[str] = json_column()
    # Sealed (docs/privacy.md, P4) because it signs messages:
    # aad_for("webhook_subscriptions", id, "secret").
    secret_sealed: str = Field(sa_type=sa.Text, nullable=False)
    # subject_ref(key, "webhook", org, sub) of the integration client that created it; None for
    # subscriptions made by coordinators (and those from before owners were recorded). Only an
    # owned subscription receives per-request events, and only its owner reads their log.
    owner_ref: str | None = Field(default=None, max_length=64)


class WebhookDelivery(TenantRow, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_subscription_log", "subscription_id", "created_at", "id"),
        sa.Index("ix_webhook_deliveries_contact_request", "contact_request_id"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
    )

    subscription_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(),
            sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    event_id: uuid.UUID  # the ``webhook-id``: one event, the same id for every subscriber
    event_type: str = Field(max_length=64)
    # The contact request a per-request event is about (its body carries the id too): the
    # request's erasure or retention purge deletes these deliveries, log included.
    contact_request_id: uuid.UUID | None = Field(default=None)
    body: str = Field(sa_type=sa.Text, nullable=False)
    status: str = Field(default=DeliveryStatus.pending, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = utc_column(nullable=True)
    last_attempt_at: datetime | None = utc_column(nullable=True)
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=100)
    delivered_at: datetime | None = utc_column(nullable=True)


class WebhookMarker(SQLModel, table=True):
    """ "This event was already emitted for this subject in this window" (training.expiring:
    once per record per expiry date). The primary key makes the check race-free."""

    __tablename__ = "webhook_markers"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    event_type: str = Field(max_length=64, primary_key=True)
    subject_id: uuid.UUID = Field(primary_key=True)
    window: str = Field(max_length=32, primary_key=True)
    created_at: datetime = utc_column()
