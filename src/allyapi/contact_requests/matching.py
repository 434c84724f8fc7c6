"""Who should take a request: the allies domain's suggestion ranking, then a capacity claim.

The ranking is ``AllyRepository.suggestions`` (one rule for ``GET /v1/allies/suggestions``, the
409's alternatives and auto-matching): listed, the caller's own department last, allies
available now first, then topic and language matches, then the load band of the last snapshot
and the day's tie-break (allies/ranking.py). Alternatives are a list the caller sees, so they
count room as the snapshot does; a claim counts the live open requests, so it never tries an ally who is full.
A suggestion is only a candidate: the slot is taken by the conditional UPDATE in
``claim_ally_slot``, and when a racing request took the last slot first the next candidate is
tried.

Re-matching (a decline, a paused or retired ally's hand-back) is ``claim_for_rematch``: it
waits for a candidate whose row another transaction holds instead of passing over them, so a
request ends ``declined`` only when no listed ally with room remains. How it stays free of
deadlocks is explained there and in docs/request-lifecycle.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.allies.repository import AllyRepository, SuggestionQuery
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.core.db import faults as dbfaults
from allyapi.core.db.models import utcnow
from allyapi.core.http.errors import ServiceUnavailable

# Candidates tried per match beyond the excluded ones: a few losses to racing requests are
# normal; more means the network is full and the answer is "nobody".
MATCH_TRIES = 5
ALTERNATIVES = 3
# Re-matching waits at most this long for the rows of one round; a round that waited longer is
# rolled back (releasing what it locked) and tried again, at most LOCK_ROUNDS times: about two
# seconds in all before the caller gets a 503 and nothing is stored.
LOCK_WAIT_MS = 250
LOCK_ROUNDS = 8


class RematchBusy(ServiceUnavailable):
    slug, title = "rematch-busy", "The request could not be re-matched right now"


class _RoundFull(Exception):
    """Every candidate of a round turned out to be full once their rows were ours."""


@dataclass(frozen=True)
class Wanted:
    topic: str | None
    language: str | None
    # Lower-cased department claim of the requester, ranked last; None: no department rule
    # (re-matching: the requester's department is never stored, docs/privacy.md, P1).
    avoid_department: str | None = None
    exclude: Collection[uuid.UUID] = field(default_factory=frozenset)


def department_key(department: str | None) -> str | None:
    return (department or "").strip().lower() or None


class Matcher:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.allies = AllyRepository(session)
        self.repo = ContactRequestRepository(session)

    async def ranked(
        self, org_id: str, today: date, wanted: Wanted, limit: int, *, live: bool = True
    ) -> Sequence[Ally]:
        query = SuggestionQuery(
            topic=wanted.topic,
            language=wanted.language,
            timezone=None,
            avoid_department=wanted.avoid_department,
            limit=limit + len(wanted.exclude),
            capacity="live" if live else "published",
            available_at=utcnow(),
        )
        rows = await self.allies.suggestions(org_id, today, query)
        return [ally for ally in rows if ally.id not in wanted.exclude][:limit]

    async def claim_best(self, org_id: str, today: date, wanted: Wanted) -> Ally | None:
        """The best candidate whose slot this transaction obtained, or None (new requests:
        the transaction holds no ally row yet, so waiting for a candidate's row is safe)."""
        for ally in await self.ranked(org_id, today, wanted, MATCH_TRIES):
            if await self.repo.claim_ally_slot(org_id, ally.id, today):
                return ally
        return None

    async def claim_for_rematch(
        self, org_id: str, today: date, wanted: Wanted, *, giving_back: uuid.UUID | None
    ) -> Ally | None:
        """The best candidate with room for a request ``giving_back`` hands back; None only
        when no listed ally with room remains.

        Each round ranks up to MATCH_TRIES candidates and, inside a savepoint, locks their
        rows and ``giving_back``'s in id order, waiting for transactions that hold them (a
        create, cancel or complete takes a few milliseconds). One lock order for every
        re-match is what keeps two allies declining towards each other from deadlocking. A
        round whose candidates all turned out full is rolled back to its savepoint, which
        releases its locks, and the next round ranks the others. A round that waited longer
        than LOCK_WAIT_MS (a path that took an ally's row first, such as a pause, waits for
        one of ours) is rolled back and tried again; after LOCK_ROUNDS of those, 503.
        """
        full: set[uuid.UUID] = set()
        waits = 0
        while True:
            others = Wanted(
                wanted.topic, wanted.language, wanted.avoid_department, {*wanted.exclude, *full}
            )
            candidates = await self.ranked(org_id, today, others, MATCH_TRIES)
            if not candidates:
                return None
            held = [ally.id for ally in candidates]
            if giving_back is not None:
                held.append(giving_back)
            try:
                async with self.session.begin_nested():
                    await self.repo.lock_allies_in_order(org_id, held, wait_ms=LOCK_WAIT_MS)
                    for ally in candidates:
                        if await self.repo.claim_ally_slot(org_id, ally.id, today):
                            return ally
                    raise _RoundFull
            except _RoundFull:
                full.update(ally.id for ally in candidates)
            except DBAPIError as exc:
                waits += 1
                if not dbfaults.gave_up_waiting(exc):
                    raise
                if waits >= LOCK_ROUNDS:
                    raise RematchBusy(
                        "other changes to these allies are in progress; retry shortly",
                        headers={"Retry-After": str(dbfaults.RETRY_AFTER_SECONDS)},
                    ) from exc

    async def alternatives(self, org_id: str, today: date, wanted: Wanted) -> Sequence[Ally]:
        return await self.ranked(org_id, today, wanted, ALTERNATIVES, live=False)
