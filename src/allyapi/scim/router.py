"""/scim/v2: SCIM 2.0 provisioning for identity providers (docs/scim.md).

Authenticated like the rest of the API (a bearer JWT), for the ``integration`` role only.
Answers are ``application/scim+json``; errors are SCIM Error documents (scim/errors.py).
SCIM's own query parameters (``filter``, ``startIndex``, ``count``, ``attributes``,
``excludedAttributes``) are declared, so the unknown-parameter rule accepts them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse

from allyapi.core.http.errors import NotFound
from allyapi.scim.deps import Provisioning, Scim
from allyapi.scim.documents import (
    MAX_RESULTS,
    PREFIX,
    RESOURCE_TYPE,
    SCHEMA,
    SCIM_JSON,
    SERVICE_PROVIDER_CONFIG,
    USER_SCHEMA,
    list_document,
)
from allyapi.scim.errors import NotImplementedHere, ScimProblem
from allyapi.scim.filters import user_name_wanted
from allyapi.scim.openapi import (
    ATTRIBUTES,
    EXCLUDED,
    LIST_RESPONSES,
    PATCH_BODY,
    USER_BODY,
    USER_NAME_FILTER,
    USER_RESPONSES,
    discovery_responses,
)
from allyapi.scim.service import ScimService, Shape

router = APIRouter(prefix="/scim/v2", tags=["scim"])


class ScimJSONResponse(JSONResponse):
    media_type = SCIM_JSON


AttributesQuery = Annotated[str | None, Query(max_length=1000, description=ATTRIBUTES)]
ExcludedQuery = Annotated[
    str | None, Query(alias="excludedAttributes", max_length=1000, description=EXCLUDED)
]
ScimBody = Annotated[dict[str, Any], Body(media_type=SCIM_JSON)]


def _shape(attributes: str | None, excluded: str | None) -> Shape:
    def names(text: str | None) -> list[str] | None:
        return [name.strip() for name in text.split(",") if name.strip()] if text else None

    return Shape(names(attributes), names(excluded))


def _user(scim: ScimService, row: Any, shape: Shape, status: int = 200) -> ScimJSONResponse:
    document = scim.document(row, shape)
    headers = {"Location": f"{PREFIX}/Users/{document['id']}"} if status == 201 else None
    return ScimJSONResponse(document, status_code=status, headers=headers)


@router.get(
    "/ServiceProviderConfig",
    summary="What this SCIM service supports",
    response_class=ScimJSONResponse,
    responses=discovery_responses("ServiceProviderConfig"),
)
async def scim_service_provider_config(who: Provisioning) -> ScimJSONResponse:
    return ScimJSONResponse(SERVICE_PROVIDER_CONFIG)


@router.get(
    "/Schemas",
    summary="The SCIM schemas served (the minimal User)",
    response_class=ScimJSONResponse,
    responses=discovery_responses("ListResponse"),
)
async def scim_schemas(who: Provisioning) -> ScimJSONResponse:
    return ScimJSONResponse(list_document([SCHEMA], total=1, start_index=1))


@router.get(
    "/Schemas/{schema_id}",
    summary="One SCIM schema",
    response_class=ScimJSONResponse,
    responses=discovery_responses("Schema"),
)
async def scim_schema(
    who: Provisioning, schema_id: Annotated[str, Path(max_length=200)]
) -> ScimJSONResponse:
    if schema_id != USER_SCHEMA:
        raise NotFound("no such schema")
    return ScimJSONResponse(SCHEMA)


@router.get(
    "/ResourceTypes",
    summary="The SCIM resource types served (User)",
    response_class=ScimJSONResponse,
    responses=discovery_responses("ListResponse"),
)
async def scim_resource_types(who: Provisioning) -> ScimJSONResponse:
    return ScimJSONResponse(list_document([RESOURCE_TYPE], total=1, start_index=1))


@router.get(
    "/ResourceTypes/{name}",
    summary="One SCIM resource type",
    response_class=ScimJSONResponse,
    responses=discovery_responses("ResourceType"),
)
async def scim_resource_type(
    who: Provisioning, name: Annotated[str, Path(max_length=200)]
) -> ScimJSONResponse:
    if name != "User":
        raise NotFound("no such resource type")
    return ScimJSONResponse(RESOURCE_TYPE)


@router.post(
    "/.search",
    summary="Search several resource types at once: not supported (501)",
    response_class=ScimJSONResponse,
    responses={
        501: {
            "description": "Not supported: use GET /Users with a filter",
            "headers": {
                name: {"$ref": f"#/components/headers/{name}"}
                for name in ("RateLimit", "RateLimit-Policy")
            },
        }
    },
)
async def scim_search_everything(who: Provisioning) -> ScimJSONResponse:
    raise NotImplementedHere("search GET /scim/v2/Users with a filter instead")


@router.get(
    "/Users",
    summary='Users (people holding an ally profile); filter userName eq "…"',
    response_class=ScimJSONResponse,
    responses=LIST_RESPONSES,
)
async def scim_list_users(
    who: Provisioning,
    scim: Scim,
    filter: Annotated[
        str | None,
        # The pattern is published, not enforced by FastAPI: any other filter is SCIM's
        # 400 invalidFilter (scim/filters.py), not a generic invalidValue.
        Query(
            max_length=1000,
            json_schema_extra={"pattern": USER_NAME_FILTER},
            description='Only `userName eq "…"`',
        ),
    ] = None,
    start_index: Annotated[int, Query(alias="startIndex", ge=1, le=2**31 - 1)] = 1,
    count: Annotated[
        int, Query(ge=0, le=2**31 - 1, description=f"At most {MAX_RESULTS} are returned")
    ] = MAX_RESULTS,
    attributes: AttributesQuery = None,
    excluded: ExcludedQuery = None,
) -> ScimJSONResponse:
    shape = _shape(attributes, excluded)
    count = min(count, MAX_RESULTS)
    if filter is not None:
        found = await scim.find(who, user_name_wanted(filter))
        rows = [found] if found is not None else []
        total = len(rows)
        rows = rows[start_index - 1 : start_index - 1 + count]
    else:
        total, rows = await scim.page(who, start_index=start_index, count=count)
    resources = [scim.document(row, shape) for row in rows]
    return ScimJSONResponse(list_document(resources, total=total, start_index=start_index))


@router.post(
    "/Users",
    status_code=201,
    summary="Link the ally profile of the person named by userName (never creates one)",
    response_class=ScimJSONResponse,
    responses=USER_RESPONSES(201, 404, 409),
    openapi_extra=USER_BODY,
)
async def scim_link_user(
    who: Provisioning,
    scim: Scim,
    body: ScimBody,
    attributes: AttributesQuery = None,
    excluded: ExcludedQuery = None,
) -> ScimJSONResponse:
    row = await scim.link(who, _object(body))
    return _user(scim, row, _shape(attributes, excluded), 201)


@router.get(
    "/Users/{user_id}",
    summary="A User",
    response_class=ScimJSONResponse,
    responses=USER_RESPONSES(200),
)
async def scim_get_user(
    who: Provisioning,
    scim: Scim,
    user_id: uuid.UUID,
    attributes: AttributesQuery = None,
    excluded: ExcludedQuery = None,
) -> ScimJSONResponse:
    return _user(scim, await scim.get(who, user_id), _shape(attributes, excluded))


@router.put(
    "/Users/{user_id}",
    summary="Replace a User (active false retires the ally profile)",
    response_class=ScimJSONResponse,
    responses=USER_RESPONSES(200),
    openapi_extra=USER_BODY,
)
async def scim_replace_user(
    who: Provisioning,
    scim: Scim,
    user_id: uuid.UUID,
    body: ScimBody,
    attributes: AttributesQuery = None,
    excluded: ExcludedQuery = None,
) -> ScimJSONResponse:
    row = await scim.replace(who, user_id, _object(body))
    return _user(scim, row, _shape(attributes, excluded))


@router.patch(
    "/Users/{user_id}",
    summary="Change a User's active or externalId (active false retires the ally profile)",
    response_class=ScimJSONResponse,
    responses=USER_RESPONSES(200),
    openapi_extra=PATCH_BODY,
)
async def scim_patch_user(
    who: Provisioning,
    scim: Scim,
    user_id: uuid.UUID,
    body: ScimBody,
    attributes: AttributesQuery = None,
    excluded: ExcludedQuery = None,
) -> ScimJSONResponse:
    operations = _object(body).get("Operations", _object(body).get("operations"))
    if not isinstance(operations, list):
        raise ScimProblem("a PatchOp needs its Operations list")
    row = await scim.patch(who, user_id, operations)
    return _user(scim, row, _shape(attributes, excluded))


@router.delete(
    "/Users/{user_id}",
    status_code=204,
    summary="Deprovision a User: retires the ally profile and removes the link",
    response_class=Response,
)
async def scim_delete_user(who: Provisioning, scim: Scim, user_id: uuid.UUID) -> Response:
    await scim.delete(who, user_id)
    return Response(status_code=204)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ScimProblem("the body must be a JSON object")
    return body
