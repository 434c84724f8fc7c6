"""The contract's shared parts: problem responses, operation ids, the bearer scheme.

Every operation gets the error responses it can really produce (401/403 when it needs a
token, 404 when it takes an id, 412 when it honours If-Match, 413 when it takes a body,
422, 500) with the RFC 9457 schema, so integrators can generate clients that know them.
Routers add the domain-specific ones (409, 429) with ``problem_responses``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from allyapi.core.http.errors import PROBLEM_JSON, Problem
from allyapi.core.http.ratelimit import READ_METHODS, WRITE_METHODS

_DESCRIPTIONS = {
    400: "The body is not decodable (not UTF-8 or not JSON at all)",
    401: "Missing or invalid bearer token",
    403: "Authenticated, but this role may not do this",
    404: "Not found, or not visible to the caller (other organisations answer the same)",
    409: "Conflicts with the current state",
    412: "If-Match does not match the current ETag",
    413: "Request body too large",
    415: "The body is not JSON (send Content-Type: application/json)",
    422: "Invalid input (values are never echoed)",
    429: "Too many requests; see Retry-After",
    500: "Unexpected error (no details are disclosed)",
    503: "Briefly unavailable, nothing was stored: the database is unreachable, this server "
    "does not hold the data key a record needs yet (a key rotation rolling out), or the "
    "rows a change needs stayed busy. Retry after Retry-After",
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Marks an operation whose figures are aggregates under the release rule (docs/aggregates.md).
# The insider tests (tests/privacy/) find every operation carrying it and attack it.
AGGREGATE: dict[str, Any] = {"x-aggregate": True}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
        }
        for status in statuses
    }


def headers_on(status: int, *names: str) -> dict[int | str, dict[str, Any]]:
    """Declares headers a route sets on its own answer (``ETag``, ``Location``), for the
    ``responses=`` of its decorator; FastAPI merges them into the generated response."""
    unknown = set(names) - set(RESPONSE_HEADERS)
    if unknown:
        raise ValueError(f"undeclared response headers: {sorted(unknown)}")
    return {status: {"headers": {name: _header_ref(name) for name in names}}}


def _header_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def operation_id(route: APIRoute) -> str:
    """The route function's name: short, stable ids for generated clients (unique app-wide)."""
    return route.name


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }
    if status == 503:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return response


def _complete(operation: dict[str, Any], path: str) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted = {422, 500}  # 422: every operation refuses query parameters it does not declare
    if path.startswith(("/v1/", "/scim/")):
        wanted.add(503)  # everything that reaches the database or a sealed value
    if operation.get("security"):
        wanted |= {401, 403}
    if "{" in path:
        wanted.add(404)
    if "requestBody" in operation:
        wanted |= {400, 413, 415}
    if any(p.get("name") == "If-Match" for p in operation.get("parameters", [])):
        wanted.add(412)
    if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
        wanted.add(404)  # a replay of a create whose resource has been deleted since
    for status in sorted(wanted):
        existing = responses.get(str(status))
        if existing is None or "HTTPValidationError" in str(existing):
            responses[str(status)] = _problem(status)
    for code, response in responses.items():
        content = response.get("content", {})
        if not code.startswith(("4", "5")) or "application/json" not in content:
            continue
        if _generic_json(content):
            content.pop("application/json")
            content[PROBLEM_JSON] = {"schema": PROBLEM_REF}
        elif content.get(PROBLEM_JSON) == {}:
            # A route's own Problem subclass (problem_responses + "model"): its schema is what
            # the problem+json body carries.
            content[PROBLEM_JSON] = content.pop("application/json")
    _standard_headers(operation)


def _standard_headers(operation: dict[str, Any]) -> None:
    """Headers that follow from the status or the operation's parameters, wherever they occur:
    a 401 says how to authenticate, a 429 or 503 when to retry, and an operation honouring
    Idempotency-Key says on its success whether the answer is a replay."""
    responses: dict[str, Any] = operation["responses"]
    by_status = {"401": ("WWW-Authenticate",), "429": ("Retry-After",), "503": ("Retry-After",)}
    for code, names in by_status.items():
        if code in responses:
            headers = responses[code].setdefault("headers", {})
            headers.update({name: _header_ref(name) for name in names})
    if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
        for code, response in responses.items():
            if code.startswith("2"):
                headers = response.setdefault("headers", {})
                headers["Idempotent-Replayed"] = _header_ref("Idempotent-Replayed")


def _generic_json(content: dict[str, Any]) -> bool:
    """An error body FastAPI described as plain JSON; a route's own model (e.g. /readyz's 503
    Readiness document) is what that route really sends, so it is kept."""
    if "application/json" not in content:
        return False
    ref = str(content["application/json"].get("schema", {}).get("$ref", ""))
    return ref == "" or ref.endswith(("/Problem", "/HTTPValidationError"))


COUNTED_METHODS = READ_METHODS | WRITE_METHODS
RESPONSE_HEADERS: dict[str, Any] = {
    "ETag": {
        "description": "Opaque strong validator of this resource's current version; send it "
        "back in If-Match to update only what you read (412 if it changed), or on a list page "
        "in If-None-Match to get 304 while the page is unchanged",
        "schema": {"type": "string", "maxLength": 200},
    },
    "Cache-Control": {
        "description": "How long a client may reuse the answer without asking again, e.g. "
        "`private, max-age=1` (for this caller only; then revalidate with If-None-Match)",
        "schema": {"type": "string", "maxLength": 100},
    },
    "Vary": {
        "description": "Request headers the answer depends on (`Authorization`: each caller "
        "keeps their own copy)",
        "schema": {"type": "string", "maxLength": 100},
    },
    "Location": {
        "description": "Path of the created resource",
        "schema": {"type": "string", "maxLength": 200},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this answer replays an earlier request with the same "
        "Idempotency-Key (nothing new was created)",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme to use: `Bearer` with a JWT",
        "schema": {"type": "string", "maxLength": 200},
    },
    "RateLimit": {
        "description": "Requests left in the current window of the policy (`writes` or `reads`) "
        "and seconds until it resets (draft-ietf-httpapi-ratelimit-headers), e.g. "
        '`"writes";r=57;t=12`',
        "schema": {"type": "string", "maxLength": 100},
    },
    "RateLimit-Policy": {
        "description": "The caller's quota per window for this kind of request, e.g. "
        '`"writes";q=120;w=60` or `"reads";q=300;w=60`',
        "schema": {"type": "string", "maxLength": 100},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying (up to a month for monthly quotas)",
        "schema": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 2678400},
    },
}
RATE_LIMIT_HEADERS = ("RateLimit", "RateLimit-Policy", "Retry-After")


def _rate_limited(operation: dict[str, Any]) -> None:
    """Reads and writes are rate-limited per caller (core/http/ratelimit.py): every answer to an
    accepted request carries RateLimit headers, and the 429 says when to retry."""
    responses: dict[str, Any] = operation["responses"]
    refs = {name: _header_ref(name) for name in RATE_LIMIT_HEADERS}
    responses["429"] = {**_problem(429), "headers": refs}
    for code, response in responses.items():
        if code.startswith("2") or code in {"304", "403", "404", "409", "412", "422"}:
            response.setdefault("headers", {}).update(
                {name: refs[name] for name in ("RateLimit", "RateLimit-Policy")}
            )


# Lengths implied by a string format: true for every value the API accepts or emits.
_FORMAT_MAX_LENGTH = {"uuid": 36, "date": 10, "date-time": 64, "time": 32}
_INT32 = 2**31 - 1
# Free text may hold anything but NUL, which PostgreSQL text cannot store: the API refuses it
# (core/http/schemas.py, core/http/middleware.py), and the contract says so.
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_BLANK_PATTERN = "^(?!\\s*$)[^\\u0000]*$"


def _bound_by_format(node: Any) -> None:
    """Writes down bounds the types already enforce, so clients and fuzzers know them:
    the length of a UUID or a date, the integer width (int32 when min/max fit in it), and
    that free text holds no NUL character."""
    if isinstance(node, list):
        for item in node:
            _bound_by_format(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    unbounded = not {"maxLength", "enum", "const"}.intersection(node)
    if kind == "string" and unbounded and node.get("format") in _FORMAT_MAX_LENGTH:
        node["maxLength"] = _FORMAT_MAX_LENGTH[node["format"]]
    if kind == "string" and not {"pattern", "format", "enum", "const"}.intersection(node):
        # Bodies strip surrounding whitespace before minLength is checked: "  " is empty.
        node["pattern"] = NOT_BLANK_PATTERN if node.get("minLength") else NO_NUL_PATTERN
    if kind == "integer" and "format" not in node:
        low, high = node.get("minimum"), node.get("maximum")
        fits = low is not None and high is not None and low >= -_INT32 - 1 and high <= _INT32
        node["format"] = "int32" if fits else "int64"
    for value in node.values():
        _bound_by_format(value)


def _query_params_not_nullable(operation: dict[str, Any]) -> None:
    """An optional query parameter is absent or a value: a query string cannot carry JSON
    ``null``, so FastAPI's ``anyOf: [X, null]`` is just X for a client."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        options = schema.get("anyOf")
        if parameter.get("in") != "query" or not isinstance(options, list):
            continue
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1 and len(options) == 2:
            schema.pop("anyOf")
            schema.update(kept[0])
            if "default" in schema and schema["default"] is None:
                schema.pop("default")


def _names_other_resources(operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """A query or a body naming another resource (``ally_id``, ``course_id``...) can get a
    404 for it (missing or another organisation's, docs/privacy.md, P8)."""
    if any(
        p.get("in") == "query" and str(p.get("name", "")).endswith("_id")
        for p in operation.get("parameters", [])
    ):
        return True
    content = operation.get("requestBody", {}).get("content", {})
    seen: set[str] = set()
    stack = [media.get("schema", {}) for media in content.values()]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            seen.add(ref)
            stack.append(schemas.get(ref.rsplit("/", 1)[-1], {}))
        if any(name.endswith("_id") for name in node.get("properties", {})):
            return True
        stack.extend(value for value in node.values() if isinstance(value, dict | list))
    return False


def install_openapi(
    app: FastAPI, finishers: Sequence[Callable[[dict[str, Any]], None]] = ()
) -> None:
    """``finishers``: a domain's own rewrite of its part of the document (SCIM's errors)."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            route.operation_id = route.operation_id or operation_id(route)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=[
                {
                    "url": "/",
                    "description": "The deployment serving this document (production, "
                    "staging or local: the contract is the same)",
                    "x-internal": False,
                }
            ],
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas.update(
            {
                name: value
                for name, value in Problem.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
                .get("$defs", {})
                .items()
            }
        )
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        problem_schema.pop("$defs", None)
        schemas["Problem"] = problem_schema
        schema["components"]["headers"] = RESPONSE_HEADERS
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                _complete(operation, path)
                _query_params_not_nullable(operation)
                if "404" not in operation["responses"] and _names_other_resources(
                    operation, schemas
                ):
                    operation["responses"]["404"] = _problem(404)
                if method.upper() in COUNTED_METHODS and path.startswith(("/v1/", "/scim/")):
                    _rate_limited(operation)
        for finish in finishers:
            finish(schema)
        _bound_by_format(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
