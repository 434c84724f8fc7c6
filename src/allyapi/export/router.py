"""GET /v1/me/export: the right of access (docs/export.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from allyapi.contact_requests.deps import OVERSIGHT_ROLES
from allyapi.core.auth.pseudonym import requester_ref, subject_ref
from allyapi.core.auth.security import Caller, PseudonymKey
from allyapi.core.http.errors import Forbidden
from allyapi.export.schemas import MeExport
from allyapi.export.service import Whose, export_document

router = APIRouter(prefix="/me", tags=["export"])
PERSON_ROLES = ("employee", "coordinator", "analyst")


@router.get(
    "/export",
    summary="Everything held about you, as one JSON document (right of access)",
    response_class=StreamingResponse,
    responses={200: {"model": MeExport, "content": {"application/json": {}}}},
)
async def export_my_data(caller: Caller, key: PseudonymKey, request: Request) -> StreamingResponse:
    """Your own data only, never anyone else's: as a requester, each request with what you
    typed, its thread, its access log and your feedback; as an ally, your profile, training
    records and the requests assigned to you (without their content). Programme actions you
    took as a coordinator are included; anonymous programme feedback is not (it is linked to
    no one). Someone with no data gets an empty document, never a 404.

    A token with the `integration` role is a machine client, not a person: 403. With the
    coordinator or analyst role the document leaves out contact requests, as those roles never
    reach individual requests (export with your employee-only session). Reading your own
    requests here is not an ally's access: the access log gains nothing.
    """
    if caller.has("integration") or not caller.has(*PERSON_ROLES):
        raise Forbidden("the export is for people: integration clients hold no personal data")
    who = caller.subject
    whose = Whose(
        org=caller.org,
        requester_ref=requester_ref(key, who),
        ally_ref=subject_ref(key, "ally", who),
        audit_ref=subject_ref(key, "audit", who),
        requests_included=not caller.has(*OVERSIGHT_ROLES),
    )
    state = request.app.state
    return StreamingResponse(
        export_document(state.database, state.settings, whose),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
