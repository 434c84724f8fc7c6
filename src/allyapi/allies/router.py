"""/v1/allies and /v1/me/ally-profile (docs/allies.md).

Employees see public profiles of listed allies only; coordinators see the coordinator view of
any ally of their org. The route order matters: fixed paths (``/suggestions``,
``/roster-sync``) are declared before ``/{ally_id}``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, Field

from allyapi.allies.deps import (
    Allies,
    CoordinatorOrTheAllyThemselves,
    Directory,
    Employee,
    EmployeeOrCoordinatorActor,
    IntegrationOrg,
)
from allyapi.allies.directory import available_instant
from allyapi.allies.models import AllyStatus
from allyapi.allies.repository import DirectoryFilter, SuggestionQuery
from allyapi.allies.schemas import (
    AllyCoordinatorView,
    AllyCreate,
    AllyOwnView,
    AllyPublic,
    AllyUpdate,
    Label,
    RosterSync,
    RosterSyncResult,
    TimezoneName,
    canonical_language,
    check_timezone,
)
from allyapi.allies.service import AllyRow
from allyapi.allies.views import managed_view, public_view
from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.audit.trail import Audit, AuditTrail
from allyapi.core.auth.security import CoordinatorOnly, PseudonymKey
from allyapi.core.db.models import utcnow
from allyapi.core.http.etag import IfMatch, IfNoneMatch, none_match, set_etag
from allyapi.core.http.idempotency import (
    IdempotencyKeyHeader,
    IdempotencyScope,
    body_hash,
    mark_replay,
)
from allyapi.core.http.openapi import headers_on, problem_responses
from allyapi.core.http.pagination import PageQuery
from allyapi.core.http.schemas import LanguageTag, Page, QueryInstant, Tag
from allyapi.workflows.ally_availability import AllyAvailability
from allyapi.workflows.deps import AllyAvailabilityFlow

router = APIRouter(prefix="/allies", tags=["allies"])
me_router = APIRouter(prefix="/me", tags=["allies"])

Timezone = Annotated[TimezoneName, AfterValidator(check_timezone)]
LanguageQuery = Annotated[
    LanguageTag | None,
    Query(
        description="A BCP 47 language range, matched by RFC 4647 basic filtering: "
        "`pt` finds allies speaking `pt`, `pt-BR` or `pt-PT`; `pt-BR` finds `pt-BR` only"
    ),
]
TopicQuery = Annotated[Tag | None, Query(description="A topic tag (case-insensitive)")]
OWN_PROFILE = "/v1/me/ally-profile"
VOLUNTEER = "allies.volunteer"  # the Idempotency-Key operation name
MAX_SUGGESTIONS = 20
TRANSITION_RESPONSES = {**problem_responses(409), **headers_on(200, "ETag")}


def _managed(response: Response, row: AllyRow) -> AllyCoordinatorView:
    ally, listed = row
    set_etag(response, ally.id, ally.version)
    return managed_view(ally, listed, AllyCoordinatorView)


def _own(response: Response, row: AllyRow) -> AllyOwnView:
    ally, listed = row
    set_etag(response, ally.id, ally.version)
    return managed_view(ally, listed, AllyOwnView)


@router.post(
    "",
    status_code=201,
    summary="Volunteer as an ally (creates your profile, status applied)",
    responses={**problem_responses(409), **headers_on(201, "ETag", "Location")},
)
async def volunteer_as_ally(
    actor: Employee,
    allies: Allies,
    body: AllyCreate,
    response: Response,
    key: PseudonymKey,
    idempotency_key: IdempotencyKeyHeader = None,
) -> AllyOwnView:
    scope = None
    if idempotency_key is not None:
        scope = IdempotencyScope(
            actor.org, actor.idempotency_ref, idempotency_key, VOLUNTEER, body_hash(body, key)
        )
    made = await allies.volunteer(actor.org, actor.subject_ref, body, scope)
    response.headers["Location"] = OWN_PROFILE
    mark_replay(response, made.replayed)
    return _own(response, made.value)


# Portals may keep a page this long, then revalidate it with If-None-Match (304, no body).
DIRECTORY_MAX_AGE = 1
DIRECTORY_CACHE_CONTROL = f"private, max-age={DIRECTORY_MAX_AGE}"
DIRECTORY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: headers_on(200, "ETag", "Cache-Control", "Vary")[200],
    304: {
        "description": "Not modified: the page is still the one whose ETag was sent in "
        "If-None-Match (no body)",
        **headers_on(304, "ETag", "Cache-Control", "Vary")[304],
    },
}


@router.get(
    "",
    summary="The ally directory (coordinators: any status)",
    response_model=Page[AllyPublic] | Page[AllyCoordinatorView],
    responses=DIRECTORY_RESPONSES,
)
async def list_allies(
    actor: EmployeeOrCoordinatorActor,
    directory: Directory,
    page: PageQuery,
    language: LanguageQuery = None,
    topic: TopicQuery = None,
    location: Annotated[Label | None, Query(description="Exact, case-insensitive")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="Text search")] = None,
    accepting: bool | None = None,
    status: Annotated[
        AllyStatus | None, Query(description="Coordinators only: allies in this status")
    ] = None,
    available_at: Annotated[
        QueryInstant | None,
        Query(
            description="An RFC 3339 instant with its offset (2000-01-01 to 2100-01-01): "
            "allies with a weekly availability window containing it, in their own time zone. "
            "Allies without a time zone are never available"
        ),
    ] = None,
    available_now: Annotated[
        bool | None,
        Query(description="`true`: allies available right now (not with `available_at`)"),
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Employees get the public profiles of *listed* allies. Coordinators get the coordinator
    view; without ``status`` they see the directory as employees do, with it the allies in
    that status (the review queue is ``status=applied``), listed or not.

    Every page has an ``ETag``; a portal that sends it back in ``If-None-Match`` gets 304
    while the page is unchanged. A change shows in every server process within a second
    (docs/performance.md)."""
    instant = available_instant(available_at, available_now)
    where = DirectoryFilter(
        status=status,
        language=canonical_language(language) if language else None,
        topic=topic.lower() if topic else None,
        location=location.lower() if location else None,
        q=q.lower() if q else None,
        accepting=accepting,
    )
    found = await directory.page(
        actor.org,
        where,
        coordinator=actor.is_coordinator,
        page=page,
        at=instant,
    )
    headers = {
        "ETag": found.etag,
        "Cache-Control": DIRECTORY_CACHE_CONTROL,
        "Vary": "Authorization",
    }
    if none_match(if_none_match, found.etag):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type="application/json", headers=headers)


@router.get("/suggestions", summary="Suggested allies for a topic, language and time zone")
async def suggest_allies(
    actor: Employee,
    allies: Allies,
    topic: TopicQuery = None,
    language: LanguageQuery = None,
    timezone: Annotated[Timezone | None, Query(description="IANA name")] = None,
    same_department: Annotated[
        bool, Query(description="Also rank allies of your own department normally")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_SUGGESTIONS)] = 5,
) -> Annotated[list[AllyPublic], Field(max_length=MAX_SUGGESTIONS)]:
    wanted = SuggestionQuery(
        topic=topic.lower() if topic else None,
        language=canonical_language(language) if language else None,
        timezone=timezone,
        avoid_department=None if same_department else actor.department_key,
        limit=limit,
        available_at=utcnow(),
    )
    return await allies.suggest(actor.org, wanted)


@router.post("/roster-sync", summary="Retire allies who left (HRIS roster)")
async def sync_ally_roster(
    source: IntegrationOrg,
    allies: AllyAvailabilityFlow,
    key: PseudonymKey,
    body: RosterSync,
    audit: Audit,
) -> RosterSyncResult:
    """``subs`` lists everyone still employed (at least one: an empty roster is refused rather
    than retiring every ally). Allies not on it and not yet retired are retired."""
    result, leavers = await allies.sync_roster(source.org, body.subs, key, source.issuers)
    await audit.record_many(AuditAction.ally_roster_retire, AuditTarget.ally, leavers, ["status"])
    return result


@router.get("/{ally_id}", summary="An ally's profile", responses=headers_on(200, "ETag"))
async def get_ally(
    actor: EmployeeOrCoordinatorActor, allies: Allies, ally_id: uuid.UUID, response: Response
) -> AllyCoordinatorView | AllyPublic:
    """Employees: a listed ally's public profile (404 otherwise). Coordinators: any ally."""
    row = await allies.read(actor.org, ally_id, coordinator=actor.is_coordinator)
    if actor.is_coordinator:
        return _managed(response, row)
    set_etag(response, row[0].id, row[0].version)
    return public_view(row[0])


async def _transition(
    allies: AllyAvailability,
    org: str,
    ally_id: uuid.UUID,
    name: str,
    response: Response,
    audit: AuditTrail,
    *,
    by_coordinator: bool = True,
) -> AllyCoordinatorView:
    row = await allies.transition(org, ally_id, name, by_coordinator=by_coordinator)
    if by_coordinator:  # an ally pausing or resuming themselves is not a programme action
        changed = ["status", "paused_by"] if name in ("pause", "resume") else ["status"]
        await audit.record(AuditAction(f"ally.{name}"), AuditTarget.ally, ally_id, changed)
    return _managed(response, row)


@router.post(
    "/{ally_id}/approve", summary="Approve an applied ally", responses=TRANSITION_RESPONSES
)
async def approve_ally(
    caller: CoordinatorOnly,
    allies: AllyAvailabilityFlow,
    ally_id: uuid.UUID,
    response: Response,
    audit: Audit,
) -> AllyCoordinatorView:
    return await _transition(allies, caller.org, ally_id, "approve", response, audit)


@router.post(
    "/{ally_id}/pause",
    summary="Pause an active ally (hands pending requests back)",
    responses=TRANSITION_RESPONSES,
)
async def pause_ally(
    actor: CoordinatorOrTheAllyThemselves,
    allies: AllyAvailabilityFlow,
    ally_id: uuid.UUID,
    response: Response,
    audit: Audit,
) -> AllyCoordinatorView:
    """The ally pausing themselves (`paused_by: ally`), or a coordinator suspending them
    (`paused_by: coordinator`; also from an ally's own pause). Either way the ally is no
    longer listed and their pending requests are handed back."""
    return await _transition(
        allies, actor.org, ally_id, "pause", response, audit, by_coordinator=actor.is_coordinator
    )


@router.post("/{ally_id}/resume", summary="Resume a paused ally", responses=TRANSITION_RESPONSES)
async def resume_ally(
    actor: CoordinatorOrTheAllyThemselves,
    allies: AllyAvailabilityFlow,
    ally_id: uuid.UUID,
    response: Response,
    audit: Audit,
) -> AllyCoordinatorView:
    """A coordinator resumes any pause; the ally only their own (403 when a coordinator
    paused them: a suspension only a coordinator lifts)."""
    return await _transition(
        allies, actor.org, ally_id, "resume", response, audit, by_coordinator=actor.is_coordinator
    )


@router.post(
    "/{ally_id}/retire",
    summary="Retire an ally (hands pending requests back)",
    responses=TRANSITION_RESPONSES,
)
async def retire_ally(
    caller: CoordinatorOnly,
    allies: AllyAvailabilityFlow,
    ally_id: uuid.UUID,
    response: Response,
    audit: Audit,
) -> AllyCoordinatorView:
    return await _transition(allies, caller.org, ally_id, "retire", response, audit)


@me_router.get(
    "/ally-profile",
    summary="Your own ally profile",
    responses={**problem_responses(404), **headers_on(200, "ETag")},
)
async def get_own_ally_profile(actor: Employee, allies: Allies, response: Response) -> AllyOwnView:
    return _own(response, await allies.own(actor.org, actor.subject_ref))


@me_router.patch(
    "/ally-profile",
    summary="Change your own ally profile",
    responses={**problem_responses(404), **headers_on(200, "ETag")},
)
async def update_own_ally_profile(
    actor: Employee,
    allies: Allies,
    body: AllyUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> AllyOwnView:
    row = await allies.update_own(actor.org, actor.subject_ref, body, if_match)
    return _own(response, row)
