"""SCIM documents (RFC 7643), built with scim2-models: the minimal User, the discovery documents.

The User schema holds what allyapi knows of an identity-provider user who holds an ally profile:
``userName`` (their ``sub``; immutable, it *is* the link to the profile), ``active`` (false
once the profile is retired), ``displayName`` (the profile's, read-only: the ally chooses it),
``externalId`` and ``meta``. Nothing else: SCIM never sees requesters, and the ally's profile
is the ally's own to edit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    CaseExact,
    ChangePassword,
    Context,
    ETag,
    Filter,
    Meta,
    Mutability,
    Patch,
    Required,
    Resource,
    ResourceType,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)
from scim2_models.urn import URN

SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PREFIX = "/scim/v2"
MAX_RESULTS = 100  # a page of Users, and the filter's maxResults
MAX_USER_NAME = 255


class AllyUser(Resource[Any]):
    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[
        str | None, Required.true, Uniqueness.server, Mutability.immutable, CaseExact.true
    ] = None
    display_name: Annotated[str | None, Mutability.read_only] = None
    # Required: every User has it (false once retired), so it can be set but never removed.
    # A POST or PUT without it leaves the profile's state as it is.
    active: Annotated[bool | None, Required.true] = None


def user_document(
    ally_id: object,
    *,
    user_name: str,
    external_id: str | None,
    display_name: str,
    active: bool,
    created: datetime,
    modified: datetime,
    version: int,
    attributes: list[str] | None = None,
    excluded: list[str] | None = None,
) -> dict[str, Any]:
    user = AllyUser(
        id=str(ally_id),
        external_id=external_id,
        user_name=user_name,
        display_name=display_name,
        active=active,
        meta=Meta(
            resource_type="User",
            created=created,
            last_modified=modified,
            location=f"{PREFIX}/Users/{ally_id}",
            version=f'W/"{version}"',
        ),
    )
    dumped: dict[str, Any] = user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return select_attributes(dumped, attributes, excluded)


ALWAYS_RETURNED = frozenset({"id", "schemas"})


def _top_level(name: str) -> str:
    """``urn:...:User:userName`` and ``meta.created`` name ``username`` and ``meta``."""
    if name.lower().startswith(USER_SCHEMA.lower() + ":"):
        name = name[len(USER_SCHEMA) + 1 :]
    return name.split(".", 1)[0].lower()


def select_attributes(
    document: dict[str, Any], attributes: list[str] | None, excluded: list[str] | None
) -> dict[str, Any]:
    """RFC 7644 §3.4.2.5 at the top level: ``attributes`` keeps only those named (plus
    ``id`` and ``schemas``, always returned), ``excludedAttributes`` drops those named."""
    if attributes:
        wanted = {_top_level(name) for name in attributes} | ALWAYS_RETURNED
        document = {k: v for k, v in document.items() if k.lower() in wanted}
    if excluded:
        dropped = {_top_level(name) for name in excluded} - ALWAYS_RETURNED
        document = {k: v for k, v in document.items() if k.lower() not in dropped}
    return document


def list_document(
    resources: list[dict[str, Any]], *, total: int, start_index: int
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
    return document


def _schema_document() -> dict[str, Any]:
    schema: dict[str, Any] = AllyUser.to_schema().model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE
    )
    schema.update(
        name="User",
        description="A person who holds an ally profile (allyapi's minimal User)",
        meta={"resourceType": "Schema", "location": f"{PREFIX}/Schemas/{USER_SCHEMA}"},
    )
    return schema


def _resource_type_document() -> dict[str, Any]:
    resource_type: dict[str, Any] = ResourceType.from_resource(AllyUser).model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE
    )
    resource_type.update(
        description="People who hold an ally profile; created by volunteering, not by SCIM",
        meta={"resourceType": "ResourceType", "location": f"{PREFIX}/ResourceTypes/User"},
    )
    return resource_type


def _service_provider_config() -> dict[str, Any]:
    config = ServiceProviderConfig(
        documentation_uri="https://allyapi.dev/docs/scim",
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="OAuth Bearer Token",
                description="A JWT with the integration role, as for the rest of the API",
                primary=True,
            )
        ],
    )
    document: dict[str, Any] = config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    document["meta"] = {
        "resourceType": "ServiceProviderConfig",
        "location": f"{PREFIX}/ServiceProviderConfig",
    }
    return document


SCHEMA = _schema_document()
RESOURCE_TYPE = _resource_type_document()
SERVICE_PROVIDER_CONFIG = _service_provider_config()
