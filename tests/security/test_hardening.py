"""Hardening (SECURITY.md): security headers everywhere, body cap before parsing, CORS closed
by default, docs optional in production."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.core.http.middleware import SECURITY_HEADERS
from allyapi.core.settings import Settings
from tests.helpers import TokenFactory, assert_problem

EXPECTED_HEADERS = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
INTRANET = "https://intranet.example"


async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def variant(settings: Settings, database: Database, **changes: Any) -> FastAPI:
    return create_app(settings.model_copy(update=changes), database)


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code)


# --- security headers -------------------------------------------------------------------------


async def test_security_headers_on_success_and_on_every_kind_of_error(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    responses = [
        await client.get("/healthz"),
        await client.get("/v1/resources", headers=tokens.employee),  # 200
        await client.get("/v1/resources"),  # 401
        await client.post("/v1/resources", json={}, headers=tokens.employee),  # 403
        await client.get("/v1/resources/not-a-uuid", headers=tokens.employee),  # 422
        await client.get("/nowhere"),  # 404
        await client.put("/v1/resources", headers=tokens.employee),  # 405
        await client.post(
            "/v1/resources",
            content=b"x" * 100_000,
            headers={**tokens.coordinator, "content-type": "application/json"},
        ),  # 413
        await client.get("/healthz", headers={"x-big": "a" * 20_000}),  # 431
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 403, 422, 404, 405, 413, 431]
    for response in responses:
        assert_security_headers(response)


@pytest.fixture
def crashing_app(settings: Settings, database: Database) -> FastAPI:
    app = create_app(settings, database)

    async def boom() -> None:
        raise RuntimeError("secret internals emp-1")

    app.add_api_route("/boom", boom)
    return app


async def test_unexpected_errors_are_a_bare_problem_with_security_headers(
    crashing_app: FastAPI,
) -> None:
    async for http in client_for(crashing_app):
        response = await http.get("/boom")
        assert_problem(response, 500)
        assert_security_headers(response)
        assert "secret" not in response.text
        assert "emp-1" not in response.text


async def test_docs_page_gets_a_policy_that_allows_this_origin_only(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy
    assert "http" not in policy
    assert "*" not in policy
    assert "unsafe-eval" not in policy
    assert response.headers["x-frame-options"] == "DENY"


# --- body cap ---------------------------------------------------------------------------------


async def test_declared_content_length_over_the_cap_is_refused_before_parsing(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    body = b'{"name": "' + b"x" * settings.max_body_bytes + b'"}'
    response = await client.post(
        "/v1/resources",
        content=body,
        headers={**tokens.coordinator, "content-type": "application/json"},
    )
    assert_problem(response, 413)


async def test_chunked_body_over_the_cap_is_refused(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    """No Content-Length: the stream is counted as it arrives and cut at the cap."""
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"name": "'
        for _ in range(settings.max_body_bytes // 1024 + 16):
            sent += 1024
            yield b"x" * 1024
        yield b'"}'

    response = await client.post(
        "/v1/resources",
        content=chunks(),
        headers={**tokens.coordinator, "content-type": "application/json"},
    )
    assert_problem(response, 413)
    assert "content-length" not in response.request.headers
    assert sent <= settings.max_body_bytes + 2048  # cut early, not read to the end


async def test_a_body_under_the_cap_is_accepted(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "Samaritans", '
        yield b'"category": "crisis", "country": "GB"}'

    response = await client.post(
        "/v1/resources",
        content=chunks(),
        headers={**tokens.coordinator, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("length", "status"), [("abc", 400), ("-1", 400), (" 2", 400), ("99999999999999999999", 413)]
)
async def test_malformed_content_length_is_refused(
    client: httpx.AsyncClient, tokens: TokenFactory, length: str, status: int
) -> None:
    response = await client.post(
        "/v1/resources",
        content=b"{}",
        headers={
            **tokens.coordinator,
            "content-type": "application/json",
            "content-length": length,
        },
    )
    assert_problem(response, status)


async def test_oversized_headers_are_refused_fast(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await client.get("/healthz", headers={f"x-h{i}": "a" * 1000 for i in range(40)})
    assert_problem(response, 431)
    assert time.monotonic() - started < 0.5


# --- CORS -------------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_is_closed_by_default(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    response = await client.options("/v1/resources", headers=preflight(INTRANET))
    assert "access-control-allow-origin" not in response.headers
    simple = await client.get("/v1/resources", headers={**tokens.employee, "Origin": INTRANET})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


async def test_cors_allows_configured_origins_only(
    settings: Settings, database: Database, tokens: TokenFactory
) -> None:
    app = variant(settings, database, cors_origins=[INTRANET])
    async for http in client_for(app):
        allowed = await http.options("/v1/resources", headers=preflight(INTRANET))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == INTRANET
        assert "access-control-allow-credentials" not in allowed.headers
        refused = await http.options("/v1/resources", headers=preflight("https://evil.example"))
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        simple = await http.get("/v1/resources", headers={**tokens.employee, "Origin": INTRANET})
        assert simple.headers["access-control-allow-origin"] == INTRANET
        assert "RateLimit" in simple.headers["access-control-expose-headers"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "https://a.example, https://b.example:8443",
            ["https://a.example", "https://b.example:8443"],
        ),
        ('["https://a.example"]', ["https://a.example"]),
        ("", []),
    ],
)
def test_cors_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("ALLYAPI_CORS_ORIGINS", raw)
    assert Settings(_env_file=None).cors_origins == expected  # type: ignore[call-arg]


@pytest.mark.parametrize("origin", ["intranet.example", "https://intranet.example/", "ftp://x"])
def test_malformed_cors_origins_are_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="CORS origin"):
        Settings(_env_file=None, cors_origins=[origin])  # type: ignore[call-arg]


# --- docs in production -----------------------------------------------------------------------


def production(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"env": "production", **changes})


async def test_docs_are_off_by_default_in_production(
    settings: Settings, database: Database
) -> None:
    assert production(settings, docs_enabled=None).expose_docs is False
    app = create_app(production(settings, docs_enabled=None), database)
    async for http in client_for(app):
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


async def test_docs_can_be_enabled_in_production(settings: Settings, database: Database) -> None:
    app = create_app(production(settings, docs_enabled=True), database)
    async for http in client_for(app):
        assert (await http.get("/openapi.json")).status_code == 200


def test_docs_default_on_outside_production() -> None:
    assert Settings(_env_file=None, env="development").expose_docs is True  # type: ignore[call-arg]


# --- 405, per-path body caps, JSON scalar types (found by Schemathesis) ----------------------


async def test_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.put("/v1/allies", headers=tokens.employee)
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
    assert_security_headers(response)


async def test_a_fixed_path_wins_over_a_template(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """``GET /v1/allies/roster-sync`` is that resource with the wrong method, not an ally id."""
    response = await client.get("/v1/allies/roster-sync", headers=tokens.employee)
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"


async def test_batch_routes_have_room_for_their_documented_size(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    big = {"rows": [{"x": "y" * 1000}] * (settings.max_body_bytes // 1000 + 10)}
    batch = await client.post("/v1/training-records/batch", json=big, headers=tokens.integration)
    assert_problem(batch, 422)  # read and validated, not cut at the default cap
    other = await client.post("/v1/resources", json=big, headers=tokens.coordinator)
    assert_problem(other, 413)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accepting", 0),
        ("accepting", "true"),
        ("max_open_requests", "3"),
        ("max_open_requests", True),
    ],
)
async def test_booleans_and_integers_must_have_their_json_type(
    client: httpx.AsyncClient, tokens: TokenFactory, field: str, value: object
) -> None:
    body = {"display_name": "Sam", field: value}
    response = await client.post("/v1/allies", json=body, headers=tokens.employee)
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", field]


async def test_nul_characters_are_refused_not_a_database_error(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """PostgreSQL text cannot hold NUL: found by Schemathesis as a 500 on the PostgreSQL leg."""
    assert_problem(await client.get("/v1/allies?q=a%00b", headers=tokens.employee), 422)
    body = {"display_name": "Sam\u0000", "topics": ["a\u0000"]}
    response = await client.post("/v1/allies", json=body, headers=tokens.employee)
    assert_problem(response, 422)
