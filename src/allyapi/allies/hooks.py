"""What happens to an ally's requests when the ally stops being available.

docs/allies.md: pausing or retiring hands the ally's pending requests back for re-matching. The
ally service calls ``on_ally_unavailable`` after pausing or retiring (also for leavers of a
roster sync), in the same transaction, so the status change and the hand-back commit together.

The re-matching itself is a contact-request transition (contact_requests/lifecycle.py,
``Lifecycle.hand_back``): each pending request goes to the best other listed ally with room
(fresh response window); one that nobody else can take ends ``declined`` (reason
``unavailable``) so the requester learns at once and gets their slot back. The unavailable
ally's ``open_requests`` drops by one per request handed back. Accepted requests stay with the
ally: the conversation has started, and the requester can close it or ask someone else.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.service import rematch_pending_of_unavailable_ally
from allyapi.core.settings import Settings


async def on_ally_unavailable(
    session: AsyncSession, org_id: str, ally_id: uuid.UUID, settings: Settings
) -> int:
    """Re-match the ally's pending requests; returns how many were handed back."""
    return await rematch_pending_of_unavailable_ally(session, org_id, ally_id, settings)
