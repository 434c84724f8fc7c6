"""Who the caller is to a contact request: its requester, its assigned ally, or nobody (404).

Computed from keyed references only: the requester by ``requester_ref`` (docs/privacy.md, P1),
the ally by the ally profile's ``subject_ref``; the raw ``sub`` goes no further than here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.core.auth.pseudonym import requester_ref, subject_ref
from allyapi.core.auth.tokens import Principal
from allyapi.core.http.errors import NotFound


class Role(StrEnum):
    requester = "requester"
    ally = "ally"


@dataclass(frozen=True)
class Person:
    """The caller as this domain sees them: keyed references, never the ``sub``."""

    org: str
    requester_ref: str
    ally_ref: str
    idempotency_ref: str
    country: str | None
    department: str | None

    def __repr__(self) -> str:
        return f"Person(org={self.org!r})"


def person_of(principal: Principal, key: bytes) -> Person:
    return Person(
        org=principal.org,
        requester_ref=requester_ref(key, principal.subject),
        ally_ref=subject_ref(key, "ally", principal.subject),
        idempotency_ref=subject_ref(key, "idem", principal.subject),
        country=principal.country,
        department=principal.department,
    )


@dataclass
class RequestAccess:
    request: ContactRequest
    role: Role
    person: Person
    ally: Ally | None = None  # the caller's ally profile when role is ``ally``


async def resolve(
    repo: ContactRequestRepository,
    person: Person,
    request_id: uuid.UUID,
    *,
    for_update: bool,
    allowed: frozenset[Role],
) -> RequestAccess:
    """The request and the caller's role in it; 404 when the caller has no allowed role.

    A requester acting on a request that is not theirs, another ally, another org, an erased
    request and an unknown id all answer the same 404 (P2, P8).
    """
    request = await repo.get(person.org, request_id, for_update=for_update)
    if request is None:
        raise NotFound("contact request not found")
    if Role.requester in allowed and request.requester_ref == person.requester_ref:
        return RequestAccess(request, Role.requester, person)
    if Role.ally in allowed and request.ally_id is not None:
        ally = await repo.ally_by_subject(person.org, person.ally_ref)
        if ally is not None and ally.id == request.ally_id:
            return RequestAccess(request, Role.ally, person, ally)
    raise NotFound("contact request not found")
