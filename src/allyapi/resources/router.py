"""/v1/resources: signposting resources (README, "Design choices")."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.audit.trail import Audit
from allyapi.core.database import Session
from allyapi.core.etag import IfMatch, set_etag
from allyapi.core.idempotency import IdempotencyKeyHeader, mark_replay, scope_of
from allyapi.core.openapi import headers_on, problem_responses
from allyapi.core.pagination import PageQuery
from allyapi.core.schemas import CountryCode, Page
from allyapi.core.security import CoordinatorOnly, EmployeeOrCoordinator, PseudonymKey
from allyapi.resources.models import ResourceCategory
from allyapi.resources.schemas import ResourceCreate, ResourcePublic, ResourceUpdate
from allyapi.resources.service import ResourceService

CREATE = "resources.create"  # the Idempotency-Key operation name
router = APIRouter(prefix="/resources", tags=["resources"])


@router.get("", summary="List signposting resources")
async def list_resources(
    caller: EmployeeOrCoordinator,
    session: Session,
    page: PageQuery,
    country: Annotated[CountryCode | None, Query(description="ISO 3166-1 alpha-2")] = None,
    include_global: Annotated[
        bool, Query(description="With `country`: also return resources that apply everywhere")
    ] = True,
    category: ResourceCategory | None = None,
) -> Page[ResourcePublic]:
    return await ResourceService(session).list(
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
    session: Session,
    body: ResourceCreate,
    response: Response,
    key: PseudonymKey,
    audit: Audit,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ResourcePublic:
    scope = scope_of(caller.org, caller.subject, key, idempotency_key, CREATE, body)
    made = await ResourceService(session).create(caller.org, body, scope)
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
    caller: EmployeeOrCoordinator, session: Session, resource_id: uuid.UUID, response: Response
) -> ResourcePublic:
    resource = await ResourceService(session).get(caller.org, resource_id)
    set_etag(response, resource.id, resource.version)
    return ResourcePublic.model_validate(resource)


@router.patch("/{resource_id}", summary="Change a resource", responses=headers_on(200, "ETag"))
async def update_resource(
    caller: CoordinatorOnly,
    session: Session,
    resource_id: uuid.UUID,
    body: ResourceUpdate,
    response: Response,
    audit: Audit,
    if_match: IfMatch = None,
) -> ResourcePublic:
    resource = await ResourceService(session).update(caller.org, resource_id, body, if_match)
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
    session: Session,
    resource_id: uuid.UUID,
    audit: Audit,
    if_match: IfMatch = None,
) -> None:
    await ResourceService(session).delete(caller.org, resource_id, if_match)
    await audit.record(AuditAction.resource_delete, AuditTarget.resource, resource_id)
