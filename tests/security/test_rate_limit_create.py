"""The create of a contact request counts its write in its own statement on PostgreSQL: the same
limit, counted once per attempt on every path, and refused first, as on every other write
(SQLite counts in the dependency: these tests pin that both answer alike)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import ContactRequest, RequesterLoad
from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.tokens import dev_subject
from allyapi.core.db.session import Database
from allyapi.core.http import ratelimit
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.core.settings import Settings
from tests.contact_requests.factories import BODY, make_ally
from tests.helpers import ORG, TokenFactory, assert_problem
from tests.security.test_rate_limits import (  # the autouse fixture applies here too
    limited_app,
    open_client,
    remaining,
    well_inside_one_window,  # noqa: F401
)

PATH = "/v1/contact-requests"


async def client_with_limit(
    settings: Settings, database: Database, limit: int
) -> AsyncIterator[httpx.AsyncClient]:
    async for http in open_client(limited_app(settings, database, limit=limit)):
        yield http


async def counted(session: AsyncSession, settings: Settings, sub: str = "emp-1") -> int:
    """The caller's write count in the current window, as stored."""
    key = subject_ref(settings.pseudonym_key_bytes, "rate", dev_subject(settings, ORG, sub))
    rows = await session.execute(
        text("SELECT count FROM rate_limit_buckets WHERE key = :key AND policy = 'writes'"),
        {"key": key},
    )
    counts = [row[0] for row in rows]
    await session.commit()  # the next read sees the next count
    assert len(counts) == 1, counts  # one window: the statement's and the dependency's agree
    return int(counts[0])


async def stored(session: AsyncSession) -> tuple[int, int, int]:
    """Contact requests, idempotency keys and requester loads in the database."""
    values = []
    for model in (ContactRequest, IdempotencyKey, RequesterLoad):
        values.append(await session.scalar(select(func.count()).select_from(model)) or 0)
    await session.commit()
    return values[0], values[1], values[2]


def create_body(ally_id: uuid.UUID | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**BODY, **changes}
    if ally_id is not None:
        body["ally_id"] = str(ally_id)
    return body


async def test_every_path_of_the_create_counts_once(
    settings: Settings, database: Database, session: AsyncSession, tokens: TokenFactory
) -> None:
    """Stored at once, replayed, refused by the statement (a full ally), matched without an
    ally, 404, 403 and 422: one count each, and the headers say what is left."""
    robin = await make_ally(session, settings, "robin", capacity=10)
    full = await make_ally(session, settings, "kim", capacity=1, open_requests=1)
    employee, mixed = tokens.employee, tokens.headers("emp-1", "employee", "coordinator")
    keyed = {**employee, "Idempotency-Key": "count-once-1"}
    attempts: list[tuple[dict[str, Any], dict[str, str], int]] = [
        (create_body(robin.id), employee, 201),
        (create_body(robin.id), keyed, 201),
        (create_body(robin.id), keyed, 201),  # the replay
        (create_body(full.id), employee, 409),
        (create_body(), employee, 201),
        (create_body(uuid.uuid4()), employee, 404),
        (create_body(robin.id), mixed, 403),
        (create_body(robin.id, urgency="whenever"), employee, 422),
        ("{not json", employee, 422),
    ]
    limit = len(attempts) + 5
    async for http in client_with_limit(settings, database, limit):
        for done, (body, headers, status) in enumerate(attempts, start=1):
            response = await http.post(PATH, json=body, headers=headers)
            assert response.status_code == status, (done, response.text)
            assert await counted(session, settings) == done
            assert remaining(response) == limit - done


async def test_over_the_limit_a_create_is_refused_first_and_stores_nothing(
    settings: Settings, database: Database, session: AsyncSession, tokens: TokenFactory
) -> None:
    robin = await make_ally(session, settings, "robin")
    async for http in client_with_limit(settings, database, 2):
        for _ in range(2):
            response = await http.post(PATH, json=create_body(robin.id), headers=tokens.employee)
            assert response.status_code == 201, response.text
        before = await stored(session)
        keyed = {**tokens.employee, "Idempotency-Key": "over-the-limit"}
        mixed = tokens.headers("emp-1", "employee", "coordinator")
        for body, headers in (
            (create_body(robin.id), keyed),  # would be stored
            (create_body(), tokens.employee),  # would be matched
            (create_body(uuid.uuid4()), tokens.employee),  # would be 404
            (create_body(robin.id), mixed),  # would be 403
            (create_body(robin.id, topic=""), tokens.employee),  # would be 422
        ):
            refused = await http.post(PATH, json=body, headers=headers)
            problem = assert_problem(refused, 429)
            assert problem["detail"].startswith("at most 2 writes per minute")
            assert remaining(refused) == 0
            assert 1 <= int(refused.headers["retry-after"]) <= ratelimit.WINDOW_SECONDS
            assert refused.headers["x-content-type-options"] == "nosniff"
            assert "emp-1" not in refused.text
        assert await stored(session) == before
        assert await counted(session, settings) == 7


async def test_concurrent_creates_never_exceed_the_limit(
    settings: Settings, database: Database, session: AsyncSession, tokens: TokenFactory
) -> None:
    robin = await make_ally(session, settings, "robin", capacity=10)
    roomy = settings.model_copy(update={"max_open_requests": 20})
    async for http in client_with_limit(roomy, database, 5):
        responses = await asyncio.gather(
            *(
                http.post(
                    PATH,
                    json=create_body(robin.id),
                    headers={**tokens.employee, "Idempotency-Key": f"race-{index}"},
                )
                for index in range(12)
            )
        )
    assert sorted(response.status_code for response in responses) == [201] * 5 + [429] * 7
    assert (await stored(session))[0] == 5
    assert await counted(session, settings) == 12


async def test_a_count_the_database_cannot_take_answers_503_not_the_route(
    settings: Settings, database: Database, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 403 decided before the route ran still needs its count: when the database refuses
    it, the answer is the 503 any write gets then, never the 403 without a count."""

    async def unreachable(*_: Any) -> tuple[int, int]:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(ratelimit, "count_request", unreachable)
    mixed = tokens.headers("emp-1", "employee", "coordinator")
    async for http in client_with_limit(settings, database, 5):
        response = await http.post(PATH, json=create_body(uuid.uuid4()), headers=mixed)
    assert_problem(response, 503)
    assert response.headers["retry-after"]
