"""The SCIM part of the contract: ``application/scim+json`` documents and SCIM errors.

The generic contract (core/http/openapi.py) gives every operation its problem+json errors; under
``/scim/`` those answers are SCIM Error documents with SCIM's status codes (a 422 is a 400
``invalidValue``, scim/errors.py), and ``scim_contract`` rewrites the operations to say so.
"""

from __future__ import annotations

from typing import Any

from allyapi.scim.documents import MAX_USER_NAME, SCIM_JSON

ATTRIBUTES = "Comma-separated attribute names to return (id and schemas always are)"
EXCLUDED = "Comma-separated attribute names not to return"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# userName and externalId: 1 to 255 characters, no control character (scim/service.py).
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f]+$"
# The one filter answered (scim/filters.py), as a pattern clients and fuzzers can read.
USER_NAME_FILTER = (
    "^(urn:ietf:params:scim:schemas:core:2\\.0:User:)?"
    '[uU][sS][eE][rR][nN][aA][mM][eE] [eE][qQ] "[^"\\\\\\u0000-\\u001f\\u007f]*"$'
)
_URN_LIST = {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 200}}
_META = {
    "type": "object",
    "properties": {
        "resourceType": {"type": "string", "maxLength": 100},
        "created": {"type": "string", "format": "date-time"},
        "lastModified": {"type": "string", "format": "date-time"},
        "location": {"type": "string", "maxLength": 200},
        "version": {"type": "string", "maxLength": 100},
    },
}
SCHEMAS: dict[str, Any] = {
    "ScimUser": {
        "type": "object",
        "description": "A person holding an ally profile (docs/scim.md)",
        "required": ["schemas", "id"],
        "properties": {
            "schemas": _URN_LIST,
            "id": {"type": "string", "format": "uuid"},
            "externalId": {"type": "string", "maxLength": 255},
            "userName": {"type": "string", "maxLength": MAX_USER_NAME},
            "displayName": {"type": "string", "maxLength": 100},
            "active": {"type": "boolean"},
            "meta": _META,
        },
    },
    "ScimUserInput": {
        "type": "object",
        "description": "userName, active and externalId are read; displayName is the "
        "ally's own (ignored), as is any attribute outside the minimal User",
        "required": ["userName"],
        "properties": {
            "schemas": _URN_LIST,
            "userName": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_USER_NAME,
                "pattern": NO_CONTROL,
            },
            "externalId": {"type": ["string", "null"], "maxLength": 255, "pattern": NO_CONTROL},
            "active": {"type": "boolean"},
        },
        "additionalProperties": True,
    },
    "ScimPatchOp": {
        "type": "object",
        "required": ["Operations"],
        "properties": {
            "schemas": _URN_LIST,
            "Operations": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "required": ["op"],
                    "properties": {
                        "op": {
                            "type": "string",
                            "maxLength": 7,
                            # add, replace or remove in any case (Entra ID sends "Replace"); a
                            # pattern, as an enum of case variants breaks client generators
                            "pattern": "^([aA][dD][dD]|[rR][eE][pP][lL][aA][cC][eE]"
                            "|[rR][eE][mM][oO][vV][eE])$",
                        },
                        "path": {"type": "string", "maxLength": 200},
                        "value": {},
                    },
                },
            },
        },
    },
    "ScimListResponse": {
        "type": "object",
        "required": ["schemas", "totalResults", "Resources"],
        "properties": {
            "schemas": _URN_LIST,
            "totalResults": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
            "startIndex": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            "itemsPerPage": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
            "Resources": {"type": "array", "maxItems": 100, "items": {"type": "object"}},
        },
    },
    "ScimDocument": {
        "type": "object",
        "description": "A SCIM discovery document (RFC 7643 §5–7)",
        "required": ["schemas"],
        "properties": {"schemas": _URN_LIST},
    },
    "ScimError": {
        "type": "object",
        "description": "RFC 7644 §3.12",
        "required": ["schemas", "status"],
        "properties": {
            "schemas": _URN_LIST,
            "status": {"type": "string", "maxLength": 3},
            "scimType": {"type": "string", "maxLength": 40},
            "detail": {"type": "string", "maxLength": 1000},
        },
    },
}


def _content(schema: str) -> dict[str, Any]:
    return {"content": {SCIM_JSON: {"schema": _ref(schema)}}}


def discovery_responses(kind: str) -> dict[int | str, dict[str, Any]]:
    schema = "ScimListResponse" if kind == "ListResponse" else "ScimDocument"
    return {200: {"description": f"The {kind}", **_content(schema)}}


LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A ListResponse of Users", **_content("ScimListResponse")}
}


MORE = {
    404: "Nobody of the organisation with this userName holds an ally profile (nothing stored)",
    409: "Already linked (scimType uniqueness)",
}


def USER_RESPONSES(status: int, *more: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {
        status: {"description": "The User", **_content("ScimUser")}
    }
    if status == 201:
        location = {"$ref": "#/components/headers/Location"}
        responses[status]["headers"] = {"Location": location}
    for code in more:
        responses[code] = {"description": MORE[code]}
    return responses


def _body(schema: str) -> dict[str, Any]:
    media = {"schema": _ref(schema)}
    return {
        "requestBody": {"required": True, "content": {SCIM_JSON: media, "application/json": media}}
    }


USER_BODY = _body("ScimUserInput")
PATCH_BODY = _body("ScimPatchOp")


def scim_contract(document: dict[str, Any]) -> None:
    """Under /scim/: errors are ScimError documents, a 422 is a 400, bodies are SCIM's."""
    document["components"]["schemas"].update(SCHEMAS)
    for path, item in document.get("paths", {}).items():
        if not path.startswith("/scim/"):
            continue
        for operation in item.values():
            responses: dict[str, Any] = operation["responses"]
            invalid = responses.pop("422", None)
            if invalid is not None:
                merged = responses.setdefault("400", invalid)
                merged.setdefault("headers", {}).update(invalid.get("headers", {}))
                merged["description"] = "Invalid value, syntax, filter or path (see scimType)"
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = {SCIM_JSON: {"schema": _ref("ScimError")}}
            body = operation.get("requestBody", {}).get("content", {})
            if "application/json" in body:  # the schema the route declared, for both
                body[SCIM_JSON] = dict(body["application/json"])
