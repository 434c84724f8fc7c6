"""Ally rules: volunteering, the directory, suggestions, the lifecycle and roster sync.

Lifecycle: ``applied → active ⇄ paused → retired``; any non-retired ally can be retired.
Every transition reads the row ``FOR UPDATE`` so two coordinators cannot both move it; a
transition from the wrong state is a 409. What a change means beyond this domain (pending
requests handed back, the ``ally.listed``/``ally.unlisted`` events) is done by
workflows/ally_availability.py around these methods, in the same transaction.

A pause records who paused (``paused_by``). An ally's own pause is theirs to lift; a
coordinator's pause is a suspension: the ally's resume is a 403, only a coordinator lifts it,
and a coordinator may turn an ally's own pause into a suspension (docs/allies.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.announcements import announce_listing_changes
from allyapi.allies.availability import store_windows
from allyapi.allies.models import Ally, AllyStatus, PausedBy
from allyapi.allies.repository import (
    AllyRepository,
    SuggestionQuery,
)
from allyapi.allies.schemas import (
    AllyCreate,
    AllyPublic,
    AllyUpdate,
    RosterSyncResult,
)
from allyapi.allies.views import public_view
from allyapi.core.auth.pseudonym import Subject, subject_ref
from allyapi.core.db.models import today, utcnow
from allyapi.core.http.errors import Conflict, Forbidden, NotFound
from allyapi.core.http.etag import check_if_match
from allyapi.core.http.idempotency import Idempotency, IdempotencyScope, Made

# Transition name → (states it may start from, state it ends in).
TRANSITIONS: dict[str, tuple[frozenset[str], AllyStatus]] = {
    "approve": (frozenset({AllyStatus.applied}), AllyStatus.active),
    "pause": (frozenset({AllyStatus.active}), AllyStatus.paused),
    "resume": (frozenset({AllyStatus.paused}), AllyStatus.active),
    "retire": (
        frozenset({AllyStatus.applied, AllyStatus.active, AllyStatus.paused}),
        AllyStatus.retired,
    ),
}
SEARCH_TEXT_MAX = 4000

AllyRow = tuple[Ally, bool]  # the ally and whether it is listed today


def _refresh_derived(ally: Ally) -> None:
    """``search_text`` and ``department_key`` follow the profile on every write."""
    parts = [
        ally.display_name,
        ally.job_title,
        ally.bio,
        " ".join(ally.topics),
        ally.location,
        ally.department,
    ]
    ally.search_text = "\n".join(part for part in parts if part).lower()[:SEARCH_TEXT_MAX]
    ally.department_key = (ally.department or "").strip().lower() or None


class AllyService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = AllyRepository(session)

    async def get_row(self, org_id: str, ally_id: uuid.UUID, *, for_update: bool = False) -> Ally:
        row = await self.repo.get(org_id, ally_id, today(), for_update=for_update)
        if row is None:
            raise NotFound("ally not found")
        return row[0]

    async def read(self, org_id: str, ally_id: uuid.UUID, *, coordinator: bool) -> AllyRow:
        """Coordinators read any ally of their org; everyone else only a listed one."""
        row = await self.repo.get(org_id, ally_id, today())
        if row is None or not (coordinator or row[1]):
            raise NotFound("ally not found")
        return row

    async def own(self, org_id: str, subject: str, *, for_update: bool = False) -> AllyRow:
        row = await self.repo.by_subject(org_id, subject, today(), for_update=for_update)
        if row is None:
            raise NotFound("you have no ally profile; POST /v1/allies to volunteer")
        return row

    async def volunteer(
        self, org_id: str, subject: str, body: AllyCreate, idempotency: IdempotencyScope | None
    ) -> Made[AllyRow]:
        """A new profile in ``applied``. The unique (org, subject_ref) constraint is the rule;
        the pre-check only spares the common case a failed INSERT. With an Idempotency-Key, a
        repeat of the same body answers the profile (as it is now) instead of a 409."""
        if idempotency is not None:
            replay = await Idempotency(self.session).claim(idempotency)
            if replay is not None:
                row = await self.read(org_id, replay.resource_id, coordinator=True)
                return Made(row, replayed=True)
        if await self.repo.by_subject(org_id, subject, today()) is not None:
            raise Conflict("you already have an ally profile")
        ally = Ally(org_id=org_id, subject_ref=subject, **body.model_dump(mode="json"))
        _refresh_derived(ally)
        self.repo.add(ally)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict("you already have an ally profile") from None
        await store_windows(self.session, org_id, ally.id, ally.timezone, ally.availability)
        if idempotency is not None:
            await Idempotency(self.session).remember(idempotency, ally.id, 201)
        return Made((ally, False))

    async def update_own(
        self, org_id: str, subject: str, body: AllyUpdate, if_match: str | None
    ) -> AllyRow:
        ally, listed = await self.own(org_id, subject, for_update=True)
        check_if_match(if_match, ally.id, ally.version)
        changes = body.model_dump(mode="json", exclude_unset=True)
        if not changes:
            return ally, listed
        for field, value in changes.items():
            setattr(ally, field, value)
        _refresh_derived(ally)
        ally.version += 1
        ally.updated_at = utcnow()
        await self.session.flush()
        await announce_listing_changes(self.session, org_id, [ally.id])  # ``accepting``
        if {"availability", "timezone"} & changes.keys():
            await store_windows(self.session, org_id, ally.id, ally.timezone, ally.availability)
        return ally, await self.repo.is_listed(org_id, ally.id, today())

    async def suggest(self, org_id: str, wanted: SuggestionQuery) -> list[AllyPublic]:
        """Ranked matches, best first. Only listed allies with room in the last snapshot of
        their load (allies/ranking.py) are candidates; among them the order is:

        1. the department rule: unless ``same_department=true``, allies whose department equals
           the caller's ``department`` claim (case-insensitively) come after every other ally,
           whatever their match, so nobody is steered into their own reporting line.
           With ``same_department=true`` department plays no part in the order;
        2. allies available now (a window of theirs contains this instant, in their own
           timezone: allies/availability.py) before the others; an ally without a timezone
           is never available now;
        3. ``topic`` matches (exact tag, case-insensitive) before non-matches;
        4. ``language`` matches (RFC 4647 basic filtering: ``pt`` matches ``pt-BR``);
        5. ``timezone`` matches (same IANA zone);
        6. load band: less than half the capacity used, then the rest (from the snapshot, not
           the live count, so a request moves nobody until the next snapshot);
        7. the day's keyed tie-break, then id, so equal candidates keep one order all day and a
           different one the next day.

        Availability, topic, language and timezone rank rather than filter: a good ally for
        another topic, or free tomorrow, beats an empty answer.
        """
        rows = await self.repo.suggestions(org_id, today(), wanted)
        return [public_view(ally) for ally in rows]

    async def transition(
        self, org_id: str, ally_id: uuid.UUID, name: str, *, by_coordinator: bool
    ) -> tuple[AllyRow, bool]:
        """The changed row, and whether the change is news beyond this domain (False when a
        coordinator only turned an ally's own pause into a suspension)."""
        allowed_from, target = TRANSITIONS[name]
        ally = await self.get_row(org_id, ally_id, for_update=True)
        # A coordinator suspending an ally who paused themselves: still paused, now theirs.
        suspends = name == "pause" and by_coordinator and ally.paused_by == PausedBy.ally
        if ally.status not in allowed_from and not suspends:
            raise Conflict(f"an ally in status {ally.status} cannot {name}")
        if name == "resume" and not by_coordinator and ally.paused_by != PausedBy.ally:
            raise Forbidden("a coordinator paused this profile: only a coordinator can resume it")
        now = utcnow()
        ally.status = target
        ally.paused_by = (
            (PausedBy.coordinator if by_coordinator else PausedBy.ally)
            if target == AllyStatus.paused
            else None
        )
        if name == "approve":
            ally.approved_at = now
        if target == AllyStatus.retired:
            ally.retired_at = now
        ally.version += 1
        ally.updated_at = now
        await self.session.flush()
        listed = await self.repo.is_listed(org_id, ally.id, today())
        # Already paused when suspended: nothing to hand back, no listing flips.
        return (ally, listed), not suspends

    async def retire_many(self, org_id: str, leavers: Sequence[uuid.UUID]) -> None:
        """Retire allies who left (roster sync, SCIM deprovisioning); handing their requests
        back and announcing the unlisting is the workflow's (workflows/ally_availability.py)."""
        await self.repo.retire_many(org_id, leavers, utcnow())

    async def reapply(self, org_id: str, ally_id: uuid.UUID) -> None:
        """A retired ally back in the review queue (``applied``): an identity provider
        reactivated the person (SCIM). A coordinator approves them again, as anyone."""
        ally = await self.get_row(org_id, ally_id, for_update=True)
        if ally.status != AllyStatus.retired:
            return
        ally.status = AllyStatus.applied
        ally.paused_by = None
        ally.approved_at = None
        ally.retired_at = None
        ally.version += 1
        ally.updated_at = utcnow()
        await self.session.flush()

    async def sync_roster(
        self, org_id: str, subs: Sequence[str], key: bytes, issuers: Sequence[str | None]
    ) -> tuple[RosterSyncResult, list[uuid.UUID]]:
        """Retire every not-yet-retired ally whose ``sub`` is not on the HRIS roster.

        The roster is hashed here (the database never sees a sub) and compared with the org's
        non-retired allies, read once ``FOR UPDATE``: that set is the size of the ally network,
        far smaller than the roster, so one read beats sending 50,000 references to the
        database. The leavers are retired with chunked UPDATEs and returned (their pending
        requests are handed back by the workflow). ``kept`` counts the non-retired allies who
        are on the roster.

        ``issuers``: every issuer that speaks for the org; a ``sub`` keeps that person at any
        of them (an HRIS knows people, not identity providers). Returns the leavers' ids too.
        """
        employed = {
            subject_ref(key, "ally", Subject(org_id, sub, issuer))
            for sub in subs
            for issuer in issuers
        }
        candidates = await self.repo.roster_candidates(org_id)
        leavers = [ally_id for ally_id, ref in candidates if ref not in employed]
        await self.retire_many(org_id, leavers)
        result = RosterSyncResult(retired=len(leavers), kept=len(candidates) - len(leavers))
        return result, leavers
