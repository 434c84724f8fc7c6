"""Who is acting on an ally profile, as route dependencies.

Being an ally is not a token role (docs/allies.md): it is a profile linked to the caller by
``subject_ref`` = subject_ref(pseudonym key, "ally", caller) (core/auth/pseudonym.py). These dependencies compute that
reference once per request, so the raw ``sub`` goes no further than here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from allyapi.allies.directory import DirectoryService
from allyapi.allies.service import AllyService
from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.security import (
    EmployeeOnly,
    EmployeeOrCoordinator,
    IntegrationOnly,
    PseudonymKey,
)
from allyapi.core.auth.tokens import Principal, TokenVerifier
from allyapi.core.db.session import Session
from allyapi.core.http.errors import Forbidden


@dataclass(frozen=True)
class AllyActor:
    """The caller as the ally domain sees them; no ``sub``, only its keyed reference."""

    org: str
    subject_ref: str
    # Another purpose, so the caller's Idempotency-Key rows cannot be joined to the profile.
    idempotency_ref: str
    # Lower-cased ``department`` claim, for the "not in my reporting line" rule.
    department_key: str | None
    is_coordinator: bool

    def __repr__(self) -> str:
        return f"AllyActor(org={self.org!r}, coordinator={self.is_coordinator})"


async def ally_service(session: Session) -> AllyService:
    return AllyService(session)


async def directory_service(request: Request) -> DirectoryService:
    return DirectoryService(request.app.state.database)


Allies = Annotated[AllyService, Depends(ally_service)]
Directory = Annotated[DirectoryService, Depends(directory_service)]


def _actor(principal: Principal, key: bytes) -> AllyActor:
    department = (principal.department or "").strip().lower() or None
    return AllyActor(
        org=principal.org,
        subject_ref=subject_ref(key, "ally", principal.subject),
        idempotency_ref=subject_ref(key, "idem", principal.subject),
        department_key=department,
        is_coordinator=principal.has("coordinator"),
    )


async def an_employee(caller: EmployeeOnly, key: PseudonymKey) -> AllyActor:
    return _actor(caller, key)


async def an_employee_or_coordinator(caller: EmployeeOrCoordinator, key: PseudonymKey) -> AllyActor:
    return _actor(caller, key)


async def coordinator_or_the_ally_themselves(
    ally_id: uuid.UUID, caller: EmployeeOrCoordinator, key: PseudonymKey, allies: Allies
) -> AllyActor:
    """A coordinator, or the employee whose own profile ``ally_id`` is.

    Another org's or an unknown id answers 404 (docs/privacy.md, P8); someone else's profile
    answers 403.
    """
    actor = _actor(caller, key)
    if actor.is_coordinator:
        return actor
    ally = await allies.get_row(actor.org, ally_id)
    if ally.subject_ref != actor.subject_ref:
        raise Forbidden("only a coordinator or the ally themselves may do this")
    return actor


@dataclass(frozen=True)
class RosterSource:
    """An HRIS integration: its org, and the issuers whose people that org has.

    A roster names people by ``sub`` without saying at which identity provider; an ally stays
    when their ``sub`` at any issuer that speaks for the org is listed (docs/identity.md)."""

    org: str
    issuers: tuple[str | None, ...]


async def an_integration(caller: IntegrationOnly, request: Request) -> RosterSource:
    verifier: TokenVerifier = request.app.state.verifier
    return RosterSource(caller.org, tuple(verifier.pseudonym_issuers(caller.org)))


Employee = Annotated[AllyActor, Depends(an_employee)]
EmployeeOrCoordinatorActor = Annotated[AllyActor, Depends(an_employee_or_coordinator)]
CoordinatorOrTheAllyThemselves = Annotated[AllyActor, Depends(coordinator_or_the_ally_themselves)]
IntegrationOrg = Annotated[RosterSource, Depends(an_integration)]
