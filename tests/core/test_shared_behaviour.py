"""The behaviour every endpoint shares (docs/api-conventions.md): problem details for every
error, no echo of submitted values, bounded bodies, uniform 401s, security headers.

Uses /v1/resources as the probe because it is the reference domain; the behaviour under test
lives in core/ and applies to every router.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from jose import jwt

from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.helpers import TokenFactory, assert_problem

MARKER = "echo-canary-5f2a"
RESOURCE = {"name": "Samaritans", "category": "crisis", "url": "https://www.samaritans.org"}


async def test_unknown_path_is_a_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get(f"/v1/{MARKER}"), 404)
    assert MARKER not in str(body)


async def test_wrong_method_is_a_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


@pytest.fixture
async def crashing_client(
    settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """A separate app instance with one test-only route that fails unexpectedly."""
    app: FastAPI = create_app(settings, database)

    async def explode() -> None:
        raise RuntimeError(f"internal detail {MARKER}")

    app.add_api_route("/test-only/explode", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_unhandled_exception_is_a_bare_500_problem(
    crashing_client: httpx.AsyncClient,
) -> None:
    response = await crashing_client.get("/test-only/explode")
    body = assert_problem(response, 500)
    assert set(body) == {"type", "title", "status"}
    assert MARKER not in response.text
    assert "Traceback" not in response.text


async def test_body_over_the_cap_is_413_with_content_length(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    response = await client.post(
        "/v1/resources",
        content=b"{" + b" " * settings.max_body_bytes + b"}",
        headers={**tokens.coordinator, "content-type": "application/json"},
    )
    assert_problem(response, 413)


async def test_body_over_the_cap_is_413_when_chunked(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // 4096 + 2):
            yield b" " * 4096

    response = await client.post(
        "/v1/resources",
        content=chunks(),
        headers={**tokens.coordinator, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_malformed_json_is_422_without_echo(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.post(
        "/v1/resources",
        content=f'{{"name": "{MARKER}", '.encode(),
        headers={**tokens.coordinator, "content-type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert body["errors"]
    assert MARKER not in response.text


@pytest.mark.parametrize(
    "change",
    [
        {"name": MARKER * 100},  # too long
        {"category": MARKER},  # not one of the choices
        {"url": MARKER},  # not a URL
        {"name": [MARKER]},  # wrong type
        {MARKER: "unknown field"},  # unknown field (its name is the caller's text too)
    ],
)
async def test_validation_errors_never_echo_the_submitted_value(
    client: httpx.AsyncClient, tokens: TokenFactory, change: dict[str, object]
) -> None:
    response = await client.post(
        "/v1/resources", json={**RESOURCE, **change}, headers=tokens.coordinator
    )
    body = assert_problem(response, 422)
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}
    assert MARKER * 2 not in response.text
    if MARKER not in change:
        assert MARKER not in response.text


def _token(settings: Settings, **claims: object) -> str:
    now = int(time.time())
    payload: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "emp-1",
        "org": "acme",
        "roles": ["employee"],
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    payload = {key: value for key, value in payload.items() if value is not None}
    token: str = jwt.encode(payload, settings.jwt_secret, algorithm="HS256")
    return token


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic ZW1wLTE6cGFzc3dvcmQ=",
        "expired",
        "wrong-audience",
        "missing-audience",
    ],
)
async def test_bad_credentials_are_a_uniform_401(
    client: httpx.AsyncClient, settings: Settings, authorization: str | None
) -> None:
    now = int(time.time())
    crafted = {
        "expired": _token(settings, iat=now - 7200, exp=now - 3600),
        "wrong-audience": _token(settings, aud="someone-else"),
        "missing-audience": _token(settings, aud=None),
    }
    if authorization in crafted:
        authorization = "Bearer " + crafted[authorization]
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/v1/resources", headers=headers)
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "emp-1" not in response.text
    assert set(body) <= {"type", "title", "status", "detail"}


async def test_a_well_formed_token_passes(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get(
        "/v1/resources", headers={"Authorization": "Bearer " + _token(settings)}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/v1/resources", "/nowhere"])
async def test_security_headers_on_every_response(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
