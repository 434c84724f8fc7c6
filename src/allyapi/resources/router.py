"""/v1/resources: signposting resources (README, "Design choices")."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.audit.trail import Audit
from allyapi.core.auth.security import CoordinatorOnly, EmployeeOrCoordinator, PseudonymKey
from allyapi.core.http.etag import IfMatch, set_etag
from allyapi.core.http.idempotency import IdempotencyKeyHeader, mark_replay, scope_of
from allyapi.core.http.openapi import headers_on, problem_responses
from allyapi.core.http.pagination import PageQuery
from allyapi.core.http.schemas import CountryCode, Page
from allyapi.resources.deps import Resources
from allyapi.resources.models import ResourceCategory
from allyapi.resources.schemas import ResourceCreate, ResourcePublic, ResourceUpdate

CREATE = "resources.create"  # the Idempotency-Key operation name
router = APIRouter(prefix="/resources", tags=["resources"])


@router.get("", summary="List signposting resources")
async def list_resources(
    caller: EmployeeOrCoordinator,
    resources: Resources,
    page: PageQuery,
    country: Annotated[CountryCode | None, Query(description="ISO 3166-1 alpha-2")] = None,
    include_global: Annotated[
        bool, Query(description="With `country`: also return resources that apply everywhere")
    ] = True,
    category: ResourceCategory | None = None,
) -> Page[ResourcePublic]:
    return await resources.list(
        caller.org,
        page=page,
        country=country,
        include_global=include_global,
        category=category,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a resource",
    responses={**problem_responses(409), **headers_on(201, "ETag", "Location")},
)
async def create_resource(
    caller: CoordinatorOnly,
    resources: Resources,
    body: ResourceCreate,
    response: Response,
    key: PseudonymKey,
    audit: Audit,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ResourcePublic:
    scope = scope_of(caller.org, caller.subject, key, idempotency_key, CREATE, body)
    made = await resources.create(caller.org, body, scope)
    resource = made.value
    mark_replay(response, made.replayed)
    await audit.record(
        AuditAction.resource_create, AuditTarget.resource, resource.id, body.model_fields_set,
        once=True,
    )  # fmt: skip
    set_etag(response, resource.id, resource.version)
    response.headers["Location"] = f"/v1/resources/{resource.id}"
    return ResourcePublic.model_validate(resource)


@router.get("/{resource_id}", summary="Read a resource", responses=headers_on(200, "ETag"))
async def get_resource(
    caller: EmployeeOrCoordinator, resources: Resources, resource_id: uuid.UUID, response: Response
) -> ResourcePublic:
    resource = await resources.get(caller.org, resource_id)
    set_etag(response, resource.id, resource.version)
    return ResourcePublic.model_validate(resource)


@router.patch("/{resource_id}", summary="Change a resource", responses=headers_on(200, "ETag"))
async def update_resource(
    caller: CoordinatorOnly,
    resources: Resources,
    resource_id: uuid.UUID,
    body: ResourceUpdate,
    response: Response,
    audit: Audit,
    if_match: IfMatch = None,
) -> ResourcePublic:
    resource = await resources.update(caller.org, resource_id, body, if_match)
    await audit.record(
        AuditAction.resource_update, AuditTarget.resource, resource_id, body.model_fields_set
    )
    set_etag(response, resource.id, resource.version)
    return ResourcePublic.model_validate(resource)


@router.delete(
    "/{resource_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a resource"
)
async def delete_resource(
    caller: CoordinatorOnly,
    resources: Resources,
    resource_id: uuid.UUID,
    audit: Audit,
    if_match: IfMatch = None,
) -> None:
    await resources.delete(caller.org, resource_id, if_match)
    await audit.record(AuditAction.resource_delete, AuditTarget.resource, resource_id)
