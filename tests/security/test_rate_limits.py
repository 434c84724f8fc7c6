"""Rate limits: per caller, per policy (writes, reads), in the database, on its clock, shared by
every process."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.app import create_app
from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.tokens import dev_subject
from allyapi.core.db.session import Database
from allyapi.core.http.ratelimit import WINDOW_SECONDS, count_request
from allyapi.core.settings import Settings
from tests.helpers import ORG, TokenFactory, assert_problem

LIMIT = 3


@pytest.fixture(autouse=True)
async def well_inside_one_window() -> None:
    """Windows are fixed minutes: a test that counts up to a limit must not straddle two of
    them (on a loaded machine a handful of requests can take seconds), so it starts at least
    15 s before the next window opens."""
    into = time.time() % WINDOW_SECONDS
    if into > WINDOW_SECONDS - 15:
        await asyncio.sleep(WINDOW_SECONDS - into + 0.5)


def limited_app(
    settings: Settings, database: Database, limit: int = LIMIT, reads: int = 1000
) -> FastAPI:
    changes = {"rate_limit_writes_per_minute": limit, "rate_limit_reads_per_minute": reads}
    return create_app(settings.model_copy(update=changes), database)


async def open_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def limited(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async for http in open_client(limited_app(settings, database)):
        yield http


async def delete_missing(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    """The cheapest write there is: a DELETE that answers 404 still counts as an attempt."""
    return await http.delete(f"/v1/resources/{uuid.uuid4()}", headers=headers)


def remaining(response: httpx.Response, policy: str = "writes") -> int:
    match = re.fullmatch(rf'"{policy}";r=(\d+);t=(\d+)', response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    assert 1 <= int(match.group(2)) <= WINDOW_SECONDS
    return int(match.group(1))


async def test_writes_over_the_limit_answer_429_with_headers(
    limited: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    seen = []
    for index in range(LIMIT):
        response = await limited.post(
            "/v1/resources",
            json={"name": f"Line {index}", "category": "crisis"},
            headers=tokens.coordinator,
        )
        assert response.status_code == 201, response.text
        assert response.headers["ratelimit-policy"] == f'"writes";q={LIMIT};w={WINDOW_SECONDS}'
        seen.append(remaining(response))
    assert seen == [2, 1, 0]

    refused = await limited.post(
        "/v1/resources",
        json={"name": "One too many", "category": "crisis"},
        headers=tokens.coordinator,
    )
    body = assert_problem(refused, 429)
    assert "coord-1" not in refused.text
    assert body["detail"].startswith(f"at most {LIMIT} writes per minute")
    assert 1 <= int(refused.headers["retry-after"]) <= WINDOW_SECONDS
    assert remaining(refused) == 0
    assert refused.headers["ratelimit-policy"] == f'"writes";q={LIMIT};w={WINDOW_SECONDS}'
    assert refused.headers["x-content-type-options"] == "nosniff"


async def test_the_limit_is_per_caller_and_reads_count_apart(
    limited: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    for _ in range(LIMIT):
        assert (await delete_missing(limited, tokens.coordinator)).status_code == 404
    assert_problem(await delete_missing(limited, tokens.coordinator), 429)

    other = tokens.headers("coord-2", "coordinator")
    assert (await delete_missing(limited, other)).status_code == 404
    same_sub_other_org = tokens.headers("coord-1", "coordinator", org="globex")
    assert (await delete_missing(limited, same_sub_other_org)).status_code == 404

    read = await limited.get("/v1/resources", headers=tokens.coordinator)
    assert read.status_code == 200
    assert read.headers["ratelimit-policy"] == f'"reads";q=1000;w={WINDOW_SECONDS}'
    assert remaining(read, "reads") == 999


async def test_refused_and_invalid_writes_count_as_attempts(
    limited: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """An employee probing a coordinator-only route (403) or sending junk (422) is slowed too."""
    for _ in range(LIMIT):
        response = await limited.post("/v1/resources", json={}, headers=tokens.employee)
        assert response.status_code == 403
        assert remaining(response) >= 0
    assert_problem(await limited.post("/v1/resources", json={}, headers=tokens.employee), 429)


async def test_unauthenticated_writes_are_401_and_not_counted(limited: httpx.AsyncClient) -> None:
    for _ in range(LIMIT + 2):
        response = await delete_missing(limited, {})
        assert_problem(response, 401)
        assert "ratelimit" not in response.headers


async def test_processes_share_the_count(
    settings: Settings, database: Database, tokens: TokenFactory
) -> None:
    """Two app instances with their own engines (two processes) on one database."""
    other_database = Database(settings)
    try:
        first = limited_app(settings, database)
        second = limited_app(settings, other_database)
        async for one in open_client(first):
            async for two in open_client(second):
                assert (await delete_missing(one, tokens.coordinator)).status_code == 404
                assert (await delete_missing(two, tokens.coordinator)).status_code == 404
                assert (await delete_missing(one, tokens.coordinator)).status_code == 404
                assert_problem(await delete_missing(two, tokens.coordinator), 429)
    finally:
        await other_database.dispose()


async def test_concurrent_writes_never_exceed_the_limit(
    settings: Settings, database: Database, tokens: TokenFactory
) -> None:
    async for http in open_client(limited_app(settings, database, limit=5)):
        responses = await asyncio.gather(
            *(delete_missing(http, tokens.coordinator) for _ in range(12))
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [404] * 5 + [429] * 7


async def test_buckets_hold_a_keyed_hash_never_the_subject(
    limited: httpx.AsyncClient, tokens: TokenFactory, settings: Settings, session: AsyncSession
) -> None:
    await delete_missing(limited, tokens.coordinator)
    rows = (await session.execute(text("SELECT key, policy, count FROM rate_limit_buckets"))).all()
    expected = subject_ref(
        settings.pseudonym_key_bytes, "rate", dev_subject(settings, ORG, "coord-1")
    )
    assert [(row.key, row.policy, row.count) for row in rows] == [(expected, "writes", 1)]
    assert "coord-1" not in expected


async def test_a_new_window_starts_at_one_and_sweeps_old_windows(
    database: Database, session: AsyncSession
) -> None:
    """Windows come from the database's clock; the first count in a new window sweeps every
    window that has ended, of every caller and policy."""
    for key, policy in (("k1", "writes"), ("k2", "reads")):
        await session.execute(
            text(
                "INSERT INTO rate_limit_buckets (key, policy, window_start, count) "
                "VALUES (:key, :policy, 60, 7)"
            ),
            {"key": key, "policy": policy},
        )
    await session.commit()
    count, reset_in = await count_request(database, "k1", "writes")
    assert count == 1
    assert 1 <= reset_in <= WINDOW_SECONDS
    assert (await count_request(database, "k1", "writes"))[0] == 2
    assert (await count_request(database, "k1", "reads"))[0] == 1
    rows = (
        await session.execute(
            text("SELECT key, policy, count FROM rate_limit_buckets ORDER BY key, policy")
        )
    ).all()
    assert [tuple(row) for row in rows] == [("k1", "reads", 1), ("k1", "writes", 2)]
