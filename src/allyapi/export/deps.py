"""Who may export and the export service, as route dependencies (docs/export.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from allyapi.contact_requests.deps import OVERSIGHT_ROLES
from allyapi.core.auth.pseudonym import requester_ref, subject_ref
from allyapi.core.auth.security import Caller, PseudonymKey
from allyapi.core.http.errors import Forbidden
from allyapi.export.service import ExportService, Whose

PERSON_ROLES = ("employee", "coordinator", "analyst")


async def a_person_exporting(caller: Caller, key: PseudonymKey) -> Whose:
    """The caller's keyed references; a machine client (``integration``) holds no personal
    data and is refused. Oversight roles export without contact requests."""
    if caller.has("integration") or not caller.has(*PERSON_ROLES):
        raise Forbidden("the export is for people: integration clients hold no personal data")
    who = caller.subject
    return Whose(
        org=caller.org,
        requester_ref=requester_ref(key, who),
        ally_ref=subject_ref(key, "ally", who),
        audit_ref=subject_ref(key, "audit", who),
        requests_included=not caller.has(*OVERSIGHT_ROLES),
    )


async def export_service(request: Request) -> ExportService:
    return ExportService(request.app.state.database, request.app.state.settings)


PersonExporting = Annotated[Whose, Depends(a_person_exporting)]
Exports = Annotated[ExportService, Depends(export_service)]
