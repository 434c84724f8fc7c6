"""The outbox: events are written in the transaction of the change that caused them.

``enqueue`` only adds rows to the caller's session (one delivery per subscription of the org
that wants the event type, all sharing one event id), so the event commits or rolls back with
the change: no event for a change that did not happen, no change without its event. Nothing is
sent here; the deliverer (deliverer.py) picks the rows up.

Payloads carry ids, dates and event types only, never anything about a requester
(docs/privacy.md, P1): ``data`` is checked against the keys each event type may carry.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import utcnow
from allyapi.webhooks.models import (
    EVENT_TYPES,
    MAX_BODY_CHARS,
    PER_REQUEST_EVENTS,
    DeliveryStatus,
    WebhookDelivery,
)
from allyapi.webhooks.repository import subscribers

# The only keys each event may carry: a new key is a deliberate change here, never a leak.
ALLOWED_DATA: dict[str, frozenset[str]] = {
    "ally.listed": frozenset({"ally_id"}),
    "ally.unlisted": frozenset({"ally_id"}),
    "training.expiring": frozenset({"training_record_id", "ally_id", "course_id", "expires_on"}),
    "contact_request.assigned": frozenset({"contact_request_id", "ally_id"}),
    "contact_request.expired": frozenset({"contact_request_id", "ally_id"}),
}
assert set(ALLOWED_DATA) == set(EVENT_TYPES)


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
    # orjson: it is on the create's hot path. A non-ASCII org id is written as UTF-8, not
    # escaped; the signature covers the bytes as sent (docs/integration-guide.md).
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()


async def enqueue(
    session: AsyncSession, org_id: str, event_type: str, data: dict[str, Any]
) -> uuid.UUID | None:
    """Add the event's deliveries to ``session``; the event id, or None if nobody subscribed."""
    ids = await enqueue_each(session, org_id, event_type, [data])
    return ids[0] if ids else None


async def enqueue_each(
    session: AsyncSession, org_id: str, event_type: str, items: list[dict[str, Any]]
) -> list[uuid.UUID]:
    """One event per item of ``items`` (same type and org), with one subscriber lookup: a
    change that flips many allies at once (a new required course) stays one query."""
    if event_type not in ALLOWED_DATA:
        raise ValueError(f"unknown event type {event_type!r}")
    for data in items:
        extra = set(data) - ALLOWED_DATA[event_type]
        if extra:
            raise ValueError(f"{event_type} may not carry {sorted(extra)}")
    if not items:
        return []
    subscriptions = await subscribers(
        session, org_id, event_type, owned_only=event_type in PER_REQUEST_EVENTS
    )
    if not subscriptions:
        return []
    now = utcnow()
    event_ids = []
    for data in items:
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
        event_ids.append(event_id)
    return event_ids
