"""An unknown query parameter is a 422 on every /v1 route, after authentication: a misspelt
filter (``?langauge=pt``) never silently answers an unfiltered list (docs/validation.md)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from allyapi.ops.contract import openapi_document
from tests.helpers import TokenFactory, assert_problem

GET_ROUTES = sorted(
    path
    for path, item in openapi_document()["paths"].items()
    if path.startswith("/v1/") and "get" in item
)


def concrete(path: str) -> str:
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + str(uuid.uuid4()) + path[end + 1 :]
    return path


@pytest.mark.parametrize("route", GET_ROUTES)
async def test_an_unknown_query_parameter_is_a_422(
    client: httpx.AsyncClient, tokens: TokenFactory, route: str
) -> None:
    path = concrete(route)
    body = assert_problem(
        await client.get(path, params={"no_such_parameter": "1"}, headers=tokens.coordinator),
        422,
    )
    assert body["errors"][0]["loc"] == ["query", "no_such_parameter"]
    assert_problem(await client.get(path, params={"no_such_parameter": "1"}), 401)


async def test_a_misspelt_filter_is_named(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    body = assert_problem(await client.get("/v1/allies?langauge=pt", headers=tokens.employee), 422)
    assert body["errors"][0]["loc"] == ["query", "langauge"]
    assert (await client.get("/v1/allies?language=pt", headers=tokens.employee)).status_code == 200
