"""Every status change of a contact request, in one place (docs/request-lifecycle.md, "Statuses").

    pending → accepted → completed          (accept, complete)
    pending → pending, another ally          (decline or hand-back, re-matched)
    pending → declined                       (decline or hand-back, nobody else fits)
    pending | accepted → cancelled           (cancel, erase)
    pending → expired                        (the expiry job, jobs/contact_requests.py)

``move`` is the only function that sets ``status``; a move into a closed status frees the
requester's and the ally's slot in the same transaction, so the counters always equal the
number of open requests. ``reassign`` is the only function that changes ``ally_id`` of an open
request. The caller has read the request ``FOR UPDATE``.

Choices the product rules leave open:
- a re-matched request gets a fresh response window (the new ally had no time yet);
- a request nobody else can take ends ``declined`` with no ally, so the requester learns at
  once (and gets the slot back) instead of waiting for the window to expire;
- a declined request no longer shows on any ally's list (``ally_id`` is cleared);
- allies who declined (``declined_by``) are never offered the same request again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.matching import Matcher, Wanted
from allyapi.contact_requests.models import ContactRequest, RequestStatus
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.contact_requests.traces_repository import RequestTraces
from allyapi.core.db.session import checkpoint_after_commit
from allyapi.core.http.errors import Conflict
from allyapi.webhooks.events import contact_request_assigned, contact_request_expired

CLOSED = frozenset(
    {
        RequestStatus.declined,
        RequestStatus.completed,
        RequestStatus.cancelled,
        RequestStatus.expired,
    }
)
# The requester reference of every erased request: not hex, so never an HMAC value.
ERASED_REF = "erased"
# Action → (statuses it may start from, status it ends in).
TRANSITIONS: dict[str, tuple[frozenset[str], RequestStatus]] = {
    "accept": (frozenset({RequestStatus.pending}), RequestStatus.accepted),
    "complete": (frozenset({RequestStatus.accepted}), RequestStatus.completed),
    "cancel": (
        frozenset({RequestStatus.pending, RequestStatus.accepted}),
        RequestStatus.cancelled,
    ),
    "decline": (frozenset({RequestStatus.pending}), RequestStatus.declined),
    "expire": (frozenset({RequestStatus.pending}), RequestStatus.expired),
}


def day_of(value: datetime | None) -> datetime | None:
    """docs/privacy.md, P7: dates kept after erasure or purge are truncated to the day."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# What an erased request keeps: what the programme report counts (docs/request-lifecycle.md),
# and its arrival in the aggregates (docs/aggregates.md: changing it would move released
# figures). Everything else, the language and preferred channel included, is dropped.
KEPT_AFTER_ERASURE = (
    "org_id",
    "ally_id",
    "topic",
    "urgency",
    "status",
    "decline_reason",
    "signposted",
    "follow_up",
    "wellbeing",
    "created_seq",
    "created_marks",
    "accepted_seq",
    "accepted_marks",
    "accept_hours",
    "completed_seq",
    "completed_marks",
    "wellbeing_seq",
    "wellbeing_marks",
)


def statistics_of(request: ContactRequest, now: datetime) -> dict[str, Any]:
    """The row that stands for an erased request: a new random id, the requester reference
    ``ERASED_REF``, the kept facts, dates cut to the day. Every NOT NULL column is given."""
    erased_on = day_of(now)
    return {
        **{name: getattr(request, name) for name in KEPT_AFTER_ERASURE},
        "id": uuid.uuid4(),
        "requester_ref": ERASED_REF,
        "anonymous": False,
        "declined_by": [],
        "signposted_resource_ids": [],
        "version": 1,
        "created_at": day_of(request.created_at),
        "accepted_at": day_of(request.accepted_at),
        "closed_at": day_of(request.closed_at),
        "updated_at": erased_on,
        "erased_at": erased_on,
        "content_purged_at": erased_on,
    }


class Lifecycle:
    def __init__(
        self, session: AsyncSession, *, response_window: timedelta, retention: timedelta
    ) -> None:
        self.session = session
        self.repo = ContactRequestRepository(session)
        self.matcher = Matcher(session)
        self.response_window = response_window
        self.retention = retention

    async def move(self, request: ContactRequest, action: str, now: datetime) -> None:
        allowed_from, target = TRANSITIONS[action]
        if request.status not in allowed_from:
            raise Conflict(f"a {request.status} request cannot be {target}")
        request.status = target
        if target == RequestStatus.accepted:
            request.accepted_at = now
            request.expires_at = None
        if target in CLOSED:
            request.closed_at = now
            request.expires_at = None
            request.content_purge_at = now + self.retention
            await self.repo.release_requester_slot(request.org_id, request.requester_ref)
            if request.ally_id is not None:
                await self.repo.release_ally_slot(request.org_id, request.ally_id)
            if target == RequestStatus.declined:
                request.ally_id = None
        self._touch(request, now)
        await self.session.flush()
        if target == RequestStatus.expired:
            await contact_request_expired(self.session, request.org_id, request.id, request.ally_id)

    async def reassign(self, request: ContactRequest, today: date, now: datetime) -> bool:
        """Give a pending request to the best other ally; False (and no change) if none has
        room.

        Candidates are claimed with ``Matcher.claim_for_rematch``, which waits for a row
        another transaction holds (never passes over an ally with room) and locks the
        current ally's row together with the candidates' in one order. The current ally's
        slot is released only once another ally took the request.
        """
        if request.status != RequestStatus.pending:
            raise Conflict(f"a {request.status} request cannot be re-matched")
        current = request.ally_id
        exclude = {uuid.UUID(value) for value in request.declined_by}
        if current is not None:
            exclude.add(current)
        wanted = Wanted(topic=request.topic, language=request.language, exclude=exclude)
        ally = await self.matcher.claim_for_rematch(
            request.org_id, today, wanted, giving_back=current
        )
        if ally is None:
            return False
        if current is not None:
            await self.repo.release_ally_slot(request.org_id, current)
        request.ally_id = ally.id
        request.expires_at = now + self.response_window
        self._touch(request, now)
        await self.session.flush()
        await contact_request_assigned(self.session, request.org_id, request.id, ally.id)
        return True

    async def decline(
        self, request: ContactRequest, ally_id: uuid.UUID, reason: str, today: date, now: datetime
    ) -> None:
        if request.status != RequestStatus.pending:
            raise Conflict(f"a {request.status} request cannot be declined")
        request.declined_by = [*request.declined_by, str(ally_id)]
        request.decline_reason = reason
        if not await self.reassign(request, today, now):
            await self.move(request, "decline", now)

    async def hand_back(self, org_id: str, ally_id: uuid.UUID, today: date, now: datetime) -> int:
        """An ally paused or retired: re-match each of their pending requests (docs/allies.md).

        The ally is not added to ``declined_by`` (they did not decline; once back they may be
        matched again). Requests nobody else can take end ``declined`` (reason
        ``unavailable``). Accepted requests stay with the ally: the conversation has started.
        """
        requests = await self.repo.pending_of_ally(org_id, ally_id)
        for request in requests:
            if not await self.reassign(request, today, now):
                request.decline_reason = "unavailable"
                await self.move(request, "decline", now)
        return len(requests)

    async def erase(self, request: ContactRequest, now: datetime) -> None:
        """Destroy the request and everything that links to it; keep only statistics
        (docs/request-lifecycle.md, "Erasure").

        An open request is cancelled first (its slots are freed; a requester counter that
        reaches zero is deleted). Then every trace goes (``RequestTraces``: thread, access
        log, data key, Idempotency-Key, per-request webhook deliveries, the feedback
        comment), and what remains — ``statistics_of`` — moves to a row with a new random
        id, so the erased id is stored nowhere. On SQLite the write-ahead log is
        checkpointed once this commits (``checkpoint_after_commit``), so the old pages leave
        the log as well (``secure_delete`` zeroes them in the file).

        The remaining row's requester reference is the constant ``ERASED_REF``: reports
        counting distinct requesters (k-anonymity) count every erased row as one person,
        so they can only suppress more, never less.
        """
        if request.status not in CLOSED:
            await self.move(request, "cancel", now)
        traces = RequestTraces(self.session)
        await traces.delete_content([request.id])
        await traces.delete_idempotency_key(request.org_id, request.id)
        await traces.restate(request.id, statistics_of(request, now))
        self.session.expunge(request)
        checkpoint_after_commit(self.session)

    @staticmethod
    def _touch(request: ContactRequest, now: datetime) -> None:
        request.version += 1
        request.updated_at = now
