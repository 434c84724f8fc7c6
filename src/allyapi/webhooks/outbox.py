"""The outbox: events are written in the transaction of the change that caused them.

``enqueue`` only adds rows to the caller's session (one delivery per subscription of the org
that wants the event type, all sharing one event id), so the event commits or rolls back with
the change: no event for a change that did not happen, no change without its event. Nothing is
sent here; the deliverer (deliverer.py) picks the rows up.

Payloads carry ids, dates and event types only, never anything about a requester
(docs/privacy.md, P1): ``data`` is checked against the keys each event type may carry.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.core.models import json_array_contains, utcnow
from allyapi.webhooks.models import (
    EVENT_TYPES,
    MAX_BODY_CHARS,
    PER_REQUEST_EVENTS,
    DeliveryStatus,
    WebhookDelivery,
    WebhookSubscription,
)

# The only keys each event may carry: a new key is a deliberate change here, never a leak.
ALLOWED_DATA: dict[str, frozenset[str]] = {
    "ally.listed": frozenset({"ally_id"}),
    "ally.unlisted": frozenset({"ally_id"}),
    "training.expiring": frozenset({"training_record_id", "ally_id", "course_id", "expires_on"}),
    "contact_request.assigned": frozenset({"contact_request_id", "ally_id"}),
    "contact_request.expired": frozenset({"contact_request_id", "ally_id"}),
}
assert set(ALLOWED_DATA) == set(EVENT_TYPES)


# Built once: this lookup runs in every create's transaction.
_SUBSCRIBERS = sa.select(col(WebhookSubscription.id)).where(
    col(WebhookSubscription.org_id) == sa.bindparam("org_id", type_=sa.String()),
    json_array_contains(
        col(WebhookSubscription.events), sa.bindparam("event_type", type_=sa.String())
    ),
)
# Per-request events go to subscriptions owned by an integration client only, whatever their
# ``events`` say: a row written before that rule (or by hand) cannot reach programme staff.
_OWNED_SUBSCRIBERS = _SUBSCRIBERS.where(col(WebhookSubscription.owner_ref).is_not(None))


def payload(
    event_id: uuid.UUID, event_type: str, org_id: str, data: dict[str, Any], at: datetime
) -> str:
    """The exact body that is signed and sent: ``{id, type, created_at, org, data}``."""
    document = {
        "id": str(event_id),
        "type": event_type,
        "created_at": at.isoformat().replace("+00:00", "Z"),
        "org": org_id,
        "data": {key: None if value is None else str(value) for key, value in data.items()},
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


async def enqueue(
    session: AsyncSession, org_id: str, event_type: str, data: dict[str, Any]
) -> uuid.UUID | None:
    """Add the event's deliveries to ``session``; the event id, or None if nobody subscribed."""
    if event_type not in ALLOWED_DATA:
        raise ValueError(f"unknown event type {event_type!r}")
    extra = set(data) - ALLOWED_DATA[event_type]
    if extra:
        raise ValueError(f"{event_type} may not carry {sorted(extra)}")
    lookup = _OWNED_SUBSCRIBERS if event_type in PER_REQUEST_EVENTS else _SUBSCRIBERS
    subscriptions = list(
        await session.scalars(lookup, {"org_id": org_id, "event_type": event_type})
    )
    if not subscriptions:
        return None
    now = utcnow()
    event_id = uuid.uuid4()
    body = payload(event_id, event_type, org_id, data, now)
    if len(body) > MAX_BODY_CHARS:
        raise ValueError("webhook payload too large")
    for subscription_id in subscriptions:
        session.add(
            WebhookDelivery(
                org_id=org_id,
                subscription_id=subscription_id,
                event_id=event_id,
                event_type=event_type,
                contact_request_id=data.get("contact_request_id"),
                body=body,
                status=DeliveryStatus.pending,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    return event_id
