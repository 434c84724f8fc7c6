"""One function per event, for the domains that cause them (one ``await`` line each).

Each adds the event to the caller's session (outbox.enqueue), so it commits with the change.
What the product rules leave open, chosen here:
- ``ally.listed`` / ``ally.unlisted`` are not here: they follow every flip of *listed*,
  whatever causes it, through allies/announcements.py.
- ``contact_request.assigned`` is emitted each time a pending request gets an ally (created,
  re-matched after a decline or a hand-back); it carries the request id and the ally id only.
- ``contact_request.expired`` carries the request id and the ally it was waiting for.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.webhooks.outbox import enqueue


async def contact_request_assigned(
    session: AsyncSession, org_id: str, request_id: uuid.UUID, ally_id: uuid.UUID
) -> None:
    await enqueue(
        session,
        org_id,
        "contact_request.assigned",
        {"contact_request_id": request_id, "ally_id": ally_id},
    )


async def contact_request_expired(
    session: AsyncSession, org_id: str, request_id: uuid.UUID, ally_id: uuid.UUID | None
) -> None:
    await enqueue(
        session,
        org_id,
        "contact_request.expired",
        {"contact_request_id": request_id, "ally_id": ally_id},
    )
