"""Idempotency-Key on create (docs/api-conventions.md) and the limits under concurrent requests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import ContactRequest
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.core.settings import Settings
from tests.contact_requests.factories import BODY, MESSAGE, load_of, make_ally, person
from tests.helpers import TokenFactory, assert_problem

PATH = "/v1/contact-requests"


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def count(session: AsyncSession, model: type) -> int:
    return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_same_key_same_body_replays_without_a_second_row(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    headers = keyed(tokens.employee, "3f1c9a4e-key-1")
    first = await client.post(PATH, json=BODY, headers=headers)
    assert first.status_code == 201
    # Same body, other key order and spacing: the validated body is what counts.
    again = await client.post(
        PATH,
        content=f'{{"message": "{MESSAGE}",   "topic": "stress"}}',
        headers={**headers, "content-type": "application/json"},
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(session, ContactRequest) == 1
    assert await load_of(session, ally.id) == 1
    stored = (await session.execute(select(IdempotencyKey))).scalars().one()
    assert stored.resource_id is not None
    assert stored.status_code == 201
    assert (stored.expires_at - stored.created_at).total_seconds() == 24 * 3600
    assert "emp-1" not in stored.caller_ref


async def test_same_key_other_body_is_422(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin")
    headers = keyed(tokens.employee, "key-2")
    assert (await client.post(PATH, json=BODY, headers=headers)).status_code == 201
    other = await client.post(PATH, json={**BODY, "urgency": "high"}, headers=headers)
    body = assert_problem(other, 422)
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert MESSAGE not in other.text
    assert await count(session, ContactRequest) == 1


async def test_keys_belong_to_their_caller_and_failures_are_not_remembered(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin", capacity=1)
    first = await client.post(PATH, json=BODY, headers=keyed(tokens.employee, "shared"))
    assert first.status_code == 201
    # Another person with the same key: their own key, their own (refused: ally full) create.
    refused = await client.post(PATH, json=BODY, headers=keyed(person(tokens, "emp-2"), "shared"))
    assert_problem(refused, 409)
    await client.post(f"{PATH}/{first.json()['id']}/cancel", headers=tokens.employee)
    retried = await client.post(PATH, json=BODY, headers=keyed(person(tokens, "emp-2"), "shared"))
    assert retried.status_code == 201
    assert retried.json()["id"] != first.json()["id"]
    assert await load_of(session, ally.id) == 1


async def test_the_key_of_an_erased_request_is_an_unknown_key(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    """Erasure deletes the key with the request: nothing says "you made one and erased it";
    the same key (even with another body) simply creates a new request."""
    await make_ally(session, settings, "robin")
    headers = keyed(tokens.employee, "erase-me")
    created = await client.post(PATH, json=BODY, headers=headers)
    await client.delete(f"{PATH}/{created.json()['id']}", headers=tokens.employee)
    assert await count(session, IdempotencyKey) == 0

    again = await client.post(PATH, json={**BODY, "message": "another body"}, headers=headers)
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != created.json()["id"]
    assert again.json()["message"] == "another body"
    replay = await client.post(PATH, json={**BODY, "message": "another body"}, headers=headers)
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")
    assert replay.json()["id"] == again.json()["id"]


async def test_bad_keys_are_422(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin")
    for key in ("k" * 201, "", "tab\tkey", "caf\u00e9".encode()):
        headers = {**tokens.employee, "Idempotency-Key": key}
        response = await client.post(PATH, json=BODY, headers=headers)
        assert_problem(response, 422)
    assert await count(session, ContactRequest) == 0


@pytest.mark.postgres_only
async def test_twenty_concurrent_identical_creates_make_one_row(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    headers = keyed(tokens.employee, "concurrent-key")
    responses = await asyncio.gather(
        *(client.post(PATH, json=BODY, headers=headers) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(session, ContactRequest) == 1
    assert await load_of(session, ally.id) == 1


@pytest.mark.postgres_only
async def test_concurrent_requests_never_exceed_ally_capacity(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin", capacity=2)
    responses = await asyncio.gather(
        *(
            client.post(
                PATH, json={**BODY, "ally_id": str(ally.id)}, headers=person(tokens, f"e{i}")
            )
            for i in range(12)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] * 2 + [409] * 10
    assert await count(session, ContactRequest) == 2
    assert await load_of(session, ally.id) == 2


@pytest.mark.postgres_only
async def test_concurrent_requests_never_exceed_the_requester_cap(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin", capacity=50)
    responses = await asyncio.gather(
        *(client.post(PATH, json=BODY, headers=tokens.employee) for _ in range(10))
    )
    cap = settings.max_open_requests
    assert sorted(r.status_code for r in responses) == [201] * cap + [429] * (10 - cap)
    assert await count(session, ContactRequest) == cap


async def test_a_key_older_than_24_hours_is_forgotten(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin")
    headers = keyed(tokens.employee, "old-key")
    first = await client.post(PATH, json=BODY, headers=headers)
    assert first.status_code == 201
    await session.execute(
        update(IdempotencyKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await session.commit()
    # Another body is no longer a conflict: the old key is gone and this is a new create.
    again = await client.post(PATH, json={**BODY, "urgency": "low"}, headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in again.headers
    assert await count(session, ContactRequest) == 2
