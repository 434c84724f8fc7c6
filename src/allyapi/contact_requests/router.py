"""/v1/contact-requests and /v1/me/contact-requests (docs/request-lifecycle.md;
docs/privacy.md, P1–P5, P7)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from allyapi.contact_requests.deps import (
    ContactRequests,
    EmployeeWithoutOversight,
    RequesterOrAssignedAlly,
    RequesterOrAssignedAllyLocked,
    TheAssignedAllyLocked,
    TheRequester,
    TheRequesterLocked,
    Threads,
)
from allyapi.contact_requests.models import RequestStatus
from allyapi.contact_requests.schemas import (
    AccessLogEntryPublic,
    CompleteBody,
    ContactRequestAllySummary,
    ContactRequestAllyView,
    ContactRequestCreate,
    ContactRequestProblem,
    ContactRequestRequesterSummary,
    ContactRequestRequesterView,
    DeclineBody,
    MessageCreate,
    MessagePublic,
)
from allyapi.core.http.idempotency import IdempotencyKeyHeader
from allyapi.core.http.openapi import headers_on, problem_responses
from allyapi.core.http.pagination import PageQuery
from allyapi.core.http.ratelimit import counted_by_its_statement, pending_write
from allyapi.core.http.schemas import Page

router = APIRouter(prefix="/contact-requests", tags=["contact requests"])
me_router = APIRouter(prefix="/me", tags=["contact requests"])


# The 409's extension members are typed (ContactRequestProblem), so generated clients can read
# ``alternatives`` (the chosen ally is full or not accepting) and ``resources`` (no ally has
# room) without casting.
CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **problem_responses(409, 429),
    **headers_on(201, "Location"),
}
CREATE_RESPONSES[409] = {
    **CREATE_RESPONSES[409],
    "model": ContactRequestProblem,
    "description": "The chosen ally is not accepting or is at capacity (`alternatives`), or "
    "no ally has room (`resources`)",
}
StatusFilter = Annotated[RequestStatus | None, Query(description="Only requests in this status")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Ask an ally for contact (confidential)",
    responses=CREATE_RESPONSES,
)
@counted_by_its_statement
async def create_contact_request(
    person: EmployeeWithoutOversight,
    service: ContactRequests,
    body: ContactRequestCreate,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ContactRequestRequesterView:
    created = await service.create(person, body.root, idempotency_key, pending_write(request))
    response.status_code = created.status_code
    response.headers["Location"] = f"/v1/contact-requests/{created.view.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return created.view


@me_router.get("/contact-requests", summary="My own contact requests, newest first")
async def list_my_contact_requests(
    person: EmployeeWithoutOversight, service: ContactRequests, page: PageQuery
) -> Page[ContactRequestRequesterSummary]:
    return await service.list_mine(person, page=page)


@router.get("", summary="Requests assigned to me as an ally, newest first")
async def list_assigned_contact_requests(
    person: EmployeeWithoutOversight,
    service: ContactRequests,
    page: PageQuery,
    status: StatusFilter = None,
) -> Page[ContactRequestAllySummary]:
    return await service.list_assigned(person, status=status, page=page)


@router.get("/{request_id}", summary="Read a request (the requester's or the ally's view)")
async def get_contact_request(
    access: RequesterOrAssignedAlly, service: ContactRequests
) -> ContactRequestRequesterView | ContactRequestAllyView:
    if access.role == "requester":
        return await service.requester_view(access.request, access.person)
    return await service.ally_view(access)


@router.post(
    "/{request_id}/accept",
    summary="Accept a request assigned to me",
    responses=problem_responses(409),
)
async def accept_contact_request(
    access: TheAssignedAllyLocked, service: ContactRequests
) -> ContactRequestAllySummary:
    return await service.accept(access)


@router.post(
    "/{request_id}/decline",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Decline a request; it is re-matched to another ally when one fits",
    responses=problem_responses(409),
)
async def decline_contact_request(
    access: TheAssignedAllyLocked, service: ContactRequests, body: DeclineBody
) -> None:
    await service.decline(access, body.reason)


@router.post(
    "/{request_id}/complete",
    summary="Complete an accepted request with a debrief",
    responses=problem_responses(409),
)
async def complete_contact_request(
    access: TheAssignedAllyLocked, service: ContactRequests, body: CompleteBody
) -> ContactRequestAllySummary:
    return await service.complete(access, body)


@router.post("/{request_id}/cancel", summary="Cancel my request", responses=problem_responses(409))
async def cancel_contact_request(
    access: TheRequesterLocked, service: ContactRequests
) -> ContactRequestRequesterView:
    return await service.cancel(access)


@router.delete(
    "/{request_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase my request: its content and thread are destroyed at once",
)
async def erase_contact_request(access: TheRequesterLocked, service: ContactRequests) -> None:
    await service.erase(access)


@router.get("/{request_id}/messages", summary="The request's message thread, oldest first")
async def list_contact_request_messages(
    access: RequesterOrAssignedAlly, threads: Threads, page: PageQuery
) -> Page[MessagePublic]:
    return await threads.list(access, page=page)


@router.post(
    "/{request_id}/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Write to the thread",
    responses=problem_responses(409),
)
async def post_contact_request_message(
    access: RequesterOrAssignedAllyLocked, threads: Threads, body: MessageCreate
) -> MessagePublic:
    return await threads.post(access, body.body)


@router.get(
    "/{request_id}/access-log", summary="Who read my request's protected content, newest first"
)
async def list_contact_request_access_log(
    access: TheRequester, threads: Threads, page: PageQuery
) -> Page[AccessLogEntryPublic]:
    return await threads.access_log(access, page=page)
