"""Who may act on contact requests, as route dependencies whose names read like sentences.

docs/privacy.md, P2: only the requester and the assigned ally ever reach a request. A token
carrying the ``coordinator``, ``analyst`` or ``integration`` role is refused (403) on every
contact-request route, even when it also carries ``employee``: programme and machine tokens
never touch individual requests. The cost, stated plainly: a person whose token carries an
oversight role cannot ask for help with that token; the identity provider must give them an
employee-only session for it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from allyapi.contact_requests.access import Person, RequestAccess, Role, person_of, resolve
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.contact_requests.service import ContactRequestService
from allyapi.contact_requests.thread import ThreadService
from allyapi.core.auth.security import AppSettings, Caller
from allyapi.core.db.session import Database, Session
from allyapi.core.http.errors import Forbidden

OVERSIGHT_ROLES = ("coordinator", "analyst", "integration")


async def an_employee_without_oversight_role(caller: Caller, settings: AppSettings) -> Person:
    if caller.has(*OVERSIGHT_ROLES):
        raise Forbidden("coordinator, analyst and integration tokens cannot use contact requests")
    if not caller.has("employee"):
        raise Forbidden("this operation needs the role: employee")
    return person_of(caller, settings.pseudonym_key_bytes)


EmployeeWithoutOversight = Annotated[Person, Depends(an_employee_without_oversight_role)]


async def contact_request_service(
    session: Session, settings: AppSettings, request: Request
) -> ContactRequestService:
    database: Database = request.app.state.database
    fast = database.autocommit if database.dialect == "postgresql" else None
    return ContactRequestService(session, settings, fast)


async def thread_service(session: Session, settings: AppSettings) -> ThreadService:
    return ThreadService(session, settings)


ContactRequests = Annotated[ContactRequestService, Depends(contact_request_service)]
Threads = Annotated[ThreadService, Depends(thread_service)]


def _access(*roles: Role, for_update: bool):  # type: ignore[no-untyped-def]
    allowed = frozenset(roles)

    async def dependency(
        request_id: uuid.UUID, person: EmployeeWithoutOversight, session: Session
    ) -> RequestAccess:
        repo = ContactRequestRepository(session)
        return await resolve(repo, person, request_id, for_update=for_update, allowed=allowed)

    dependency.__name__ = "_or_".join(roles) + ("_locked" if for_update else "")
    return dependency


RequesterOrAssignedAlly = Annotated[
    RequestAccess, Depends(_access(Role.requester, Role.ally, for_update=False))
]
# Locked variants: the request row is read FOR UPDATE, so concurrent actions serialise.
RequesterOrAssignedAllyLocked = Annotated[
    RequestAccess, Depends(_access(Role.requester, Role.ally, for_update=True))
]
TheRequester = Annotated[RequestAccess, Depends(_access(Role.requester, for_update=False))]
TheRequesterLocked = Annotated[RequestAccess, Depends(_access(Role.requester, for_update=True))]
TheAssignedAllyLocked = Annotated[RequestAccess, Depends(_access(Role.ally, for_update=True))]
