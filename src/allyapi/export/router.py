"""GET /v1/me/export: the right of access (docs/export.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from allyapi.export.deps import Exports, PersonExporting
from allyapi.export.schemas import MeExport

router = APIRouter(prefix="/me", tags=["export"])


@router.get(
    "/export",
    summary="Everything held about you, as one JSON document (right of access)",
    response_class=StreamingResponse,
    responses={200: {"model": MeExport, "content": {"application/json": {}}}},
)
async def export_my_data(whose: PersonExporting, exports: Exports) -> StreamingResponse:
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
    return StreamingResponse(
        exports.document(whose),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
