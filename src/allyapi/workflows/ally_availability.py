"""What happens beyond the allies domain when an ally's status changes.

docs/allies.md: pausing or retiring hands the ally's pending requests back for re-matching
(also for leavers of a roster sync or SCIM deprovisioning), and a change of *listed* is
announced to webhooks (``ally.listed``/``ally.unlisted``, allies/announcements.py). Both run here, after the allies service changed the row
and in the same transaction, so the status change, the hand-back and the event commit
together (or not at all).

The re-matching itself is a contact-request transition (contact_requests/lifecycle.py,
``Lifecycle.hand_back``): each pending request goes to the best other listed ally with room
(fresh response window); one that nobody else can take ends ``declined`` (reason
``unavailable``) so the requester learns at once and gets their slot back. The unavailable
ally's ``open_requests`` drops by one per request handed back. Accepted requests stay with the
ally: the conversation has started, and the requester can close it or ask someone else.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.announcements import announce_listing_changes
from allyapi.allies.models import AllyStatus
from allyapi.allies.schemas import RosterSyncResult
from allyapi.allies.service import AllyRow, AllyService
from allyapi.contact_requests.service import rematch_pending_of_unavailable_ally
from allyapi.core.settings import Settings

UNAVAILABLE = (AllyStatus.paused, AllyStatus.retired)


class AllyAvailability:
    def __init__(self, allies: AllyService, session: AsyncSession, settings: Settings) -> None:
        self.allies = allies
        self.session = session
        # The response window and retention that re-matched requests get.
        self.settings = settings

    async def _unavailable(self, org_id: str, ally_id: uuid.UUID) -> int:
        """Re-match the ally's pending requests; returns how many were handed back."""
        return await rematch_pending_of_unavailable_ally(
            self.session, org_id, ally_id, self.settings
        )

    async def transition(
        self, org_id: str, ally_id: uuid.UUID, name: str, *, by_coordinator: bool
    ) -> AllyRow:
        row, news = await self.allies.transition(
            org_id, ally_id, name, by_coordinator=by_coordinator
        )
        if not news:
            return row
        ally, _ = row
        if ally.status in UNAVAILABLE:
            await self._unavailable(org_id, ally.id)
        await announce_listing_changes(self.session, org_id, [ally.id])
        return row

    async def sync_roster(
        self, org_id: str, subs: Sequence[str], key: bytes, issuers: Sequence[str | None]
    ) -> tuple[RosterSyncResult, list[uuid.UUID]]:
        """The result, and the allies retired (the router records them in the audit trail)."""
        result, leavers = await self.allies.sync_roster(org_id, subs, key, issuers)
        await self._after_retiring(org_id, leavers)
        return result, leavers

    async def retire_leavers(self, org_id: str, leavers: Sequence[uuid.UUID]) -> None:
        """Retire allies who left (SCIM deprovisioning): their pending requests handed back
        and their unlisting announced, in the caller's transaction."""
        await self.allies.retire_many(org_id, leavers)
        await self._after_retiring(org_id, leavers)

    async def _after_retiring(self, org_id: str, leavers: Sequence[uuid.UUID]) -> None:
        for ally_id in leavers:
            await self._unavailable(org_id, ally_id)
        await announce_listing_changes(self.session, org_id, leavers)
