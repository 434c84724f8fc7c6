"""Who should take a request: the allies domain's suggestion ranking, then a capacity claim.

The ranking is ``AllyRepository.suggestions`` (one rule for ``GET /v1/allies/suggestions``, the
409's alternatives and auto-matching): listed, the caller's own department last, topic and
language matches first, then the load band of the last snapshot and the day's tie-break
(allies/ranking.py). Alternatives are a list the caller sees, so they count room as the
snapshot does; a claim counts the live open requests, so it never tries an ally who is full.
A suggestion is only a candidate: the slot is taken by the conditional UPDATE in
``claim_ally_slot``, and when a racing request took the last slot first the next candidate is
tried.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.allies.repository import AllyRepository, SuggestionQuery
from allyapi.contact_requests.repository import ContactRequestRepository

# Candidates tried per match beyond the excluded ones: a few losses to racing requests are
# normal; more means the network is full and the answer is "nobody".
MATCH_TRIES = 5
ALTERNATIVES = 3


@dataclass(frozen=True)
class Wanted:
    topic: str | None
    language: str | None
    # Lower-cased department claim of the requester, ranked last; None: no department rule
    # (re-matching: the requester's department is never stored, P1).
    avoid_department: str | None = None
    exclude: Collection[uuid.UUID] = field(default_factory=frozenset)


def department_key(department: str | None) -> str | None:
    return (department or "").strip().lower() or None


class Matcher:
    def __init__(self, session: AsyncSession) -> None:
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
        )
        rows = await self.allies.suggestions(org_id, today, query)
        return [ally for ally in rows if ally.id not in wanted.exclude][:limit]

    async def claim_best(
        self, org_id: str, today: date, wanted: Wanted, *, skip_locked: bool = False
    ) -> Ally | None:
        """The best candidate whose slot this transaction obtained, or None.

        ``skip_locked``: a candidate whose row another transaction holds is passed over
        rather than waited for (re-matching; see ``claim_ally_slot``)."""
        for ally in await self.ranked(org_id, today, wanted, MATCH_TRIES):
            if await self.repo.claim_ally_slot(org_id, ally.id, today, skip_locked=skip_locked):
                return ally
        return None

    async def alternatives(self, org_id: str, today: date, wanted: Wanted) -> Sequence[Ally]:
        return await self.ranked(org_id, today, wanted, ALTERNATIVES, live=False)
