"""One function per event, for the domains that cause them (one ``await`` line each).

Each adds the event to the caller's session (outbox.enqueue), so it commits with the change.
What the product rules leave open, chosen here:
- ``ally.listed`` is emitted when a coordinator approves or resumes an ally who is *listed*
  afterwards (an approved ally still missing required training is not listed yet);
  ``ally.unlisted`` on every pause or retirement (also roster-sync leavers): receivers treat it
  as "make sure this ally is not shown", which is harmless if it already was not. An ally who
  drops out of the directory because a required course expired is announced beforehand by
  ``training.expiring`` (jobs.py), not by ``ally.unlisted``.
- ``contact_request.assigned`` is emitted each time a pending request gets an ally (created,
  re-matched after a decline or a hand-back); it carries the request id and the ally id only.
- ``contact_request.expired`` carries the request id and the ally it was waiting for.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.webhooks.outbox import enqueue


async def ally_listing_changed(
    session: AsyncSession, org_id: str, ally_id: uuid.UUID, *, action: str, listed: bool
) -> None:
    """After an ally transition (``approve``, ``resume``, ``pause``, ``retire``)."""
    if action in ("pause", "retire"):
        await enqueue(session, org_id, "ally.unlisted", {"ally_id": ally_id})
    elif action in ("approve", "resume") and listed:
        await enqueue(session, org_id, "ally.listed", {"ally_id": ally_id})


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
