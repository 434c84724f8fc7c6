"""Requests the contract does not describe are refused, on every operation.

- A query parameter the operation does not declare is a 422 naming it (a misspelt filter
  would otherwise answer the unfiltered list).
- A body that is not JSON is a 415 (not a 422 about dictionaries).

Driven from the app's own OpenAPI document, so a new operation is covered without a new test.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from allyapi.ops.contract import openapi_document
from tests.helpers import TokenFactory, assert_problem

METHODS = ("get", "post", "patch", "put", "delete")
DOCUMENT = openapi_document()
OPERATIONS = [
    pytest.param(path, method, operation, id=f"{method.upper()} {path}")
    for path, item in sorted(DOCUMENT["paths"].items())
    for method, operation in sorted(item.items())
    if method in METHODS
]


def _url(path: str) -> str:
    filled = path
    while "{" in filled:
        start, end = filled.index("{"), filled.index("}")
        filled = filled[:start] + str(uuid.uuid4()) + filled[end + 1 :]
    return filled


def _headers(operation: dict[str, Any], tokens: TokenFactory) -> dict[str, str]:
    if not operation.get("security"):
        return {}
    return tokens.headers("any-1", "employee", "coordinator")


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS)
async def test_unknown_query_parameter_is_422(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    path: str,
    method: str,
    operation: dict[str, Any],
) -> None:
    body = {"json": {}} if "requestBody" in operation else {}
    response = await client.request(
        method.upper(),
        _url(path) + "?langauge=pt",
        headers=_headers(operation, tokens),
        **body,
    )
    if path.startswith("/scim/"):  # SCIM's shape for the same refusal (docs/scim.md)
        error = assert_scim_error(response, 400)
        assert error["scimType"] == "invalidValue"
        assert error["detail"].startswith("unknown query parameter: langauge")
        return
    problem = assert_problem(response, 422)
    assert problem["errors"] == [
        {
            "loc": ["query", "langauge"],
            "msg": "unknown query parameter: langauge",
            "type": "value_error",
        }
    ]


def assert_scim_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    error: dict[str, Any] = response.json()
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert error["status"] == str(status)
    return error


async def test_unknown_query_parameter_needs_authentication_first(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(await client.get("/v1/allies?langauge=pt"), 401)


async def test_unknown_parameter_name_that_is_not_a_name_is_not_echoed(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.get("/v1/allies?alice%40acme.example=1", headers=tokens.employee)
    problem = assert_problem(response, 422)
    assert "alice" not in response.text
    assert problem["errors"][0]["loc"] == ["query"]


async def test_declared_parameters_still_pass(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.get("/v1/allies?language=pt&limit=5", headers=tokens.employee)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "method", "operation"),
    [param for param in OPERATIONS if "requestBody" in param.values[2]],
)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", None, "application/xml"]
)
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    path: str,
    method: str,
    operation: dict[str, Any],
    content_type: str | None,
) -> None:
    headers = _headers(operation, tokens)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.request(
        method.upper(), _url(path), headers=headers, content=b'{"name": "x"}'
    )
    if path.startswith("/scim/"):
        assert_scim_error(response, 415)
    else:
        problem = assert_problem(response, 415)
        assert problem["type"].endswith("/unsupported-media-type")
    assert response.headers["accept"] == "application/json"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
async def test_json_media_types_are_accepted(
    client: httpx.AsyncClient, tokens: TokenFactory, content_type: str
) -> None:
    response = await client.post(
        "/v1/resources",
        headers={**tokens.coordinator, "Content-Type": content_type},
        content=b'{"name": "EAP", "category": "eap", "url": "https://eap.example"}',
    )
    assert response.status_code == 201, response.text


async def test_a_post_without_a_body_needs_no_content_type(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    # Lifecycle actions take no body; an empty POST is not a media-type question.
    response = await client.post(f"/v1/allies/{uuid.uuid4()}/approve", headers=tokens.coordinator)
    assert_problem(response, 404)
