"""Volunteering and the own profile (/v1/me/ally-profile)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.allies.repository import AllyRepository
from allyapi.allies.schemas import AllyCreate
from allyapi.allies.service import AllyService
from allyapi.core.http.errors import Conflict
from tests.allies.factories import PROFILE, employee, volunteer
from tests.helpers import ORG, TokenFactory, assert_problem

OWN = "/v1/me/ally-profile"


async def test_volunteer_creates_an_applied_profile(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    response = await client.post("/v1/allies", json=PROFILE, headers=employee(tokens, "alex"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "applied"
    assert body["listed"] is False
    assert body["max_open_requests"] == 3
    assert body["accepting"] is True
    assert body["approved_at"] is None
    assert body["languages"] == ["en-GB", "fr"]
    assert response.headers["location"] == OWN
    assert response.headers["etag"]
    assert "subject_ref" not in body
    stored = (await session.execute(select(Ally))).scalars().one()
    assert stored.subject_ref == tokens.ally_ref("alex")
    assert "alex" not in stored.subject_ref
    assert stored.department_key == "engineering"
    assert "happy to listen." in stored.search_text
    assert "burnout" in stored.search_text


async def test_second_profile_is_a_conflict(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await volunteer(client, tokens, "alex")
    again = await client.post("/v1/allies", json=PROFILE, headers=employee(tokens, "alex"))
    assert_problem(again, 409)
    # The same person in another org is another person.
    other = await client.post(
        "/v1/allies", json=PROFILE, headers=tokens.headers("alex", "employee", org="globex")
    )
    assert other.status_code == 201


async def test_unique_constraint_decides_a_race(
    session: AsyncSession, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two concurrent volunteers both pass the pre-check; the constraint answers 409."""
    session.add(Ally(org_id=ORG, subject_ref=tokens.ally_ref("alex"), display_name="First"))
    await session.commit()

    async def nobody(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(AllyRepository, "by_subject", nobody)
    with pytest.raises(Conflict):
        await AllyService(session).volunteer(
            ORG, tokens.ally_ref("alex"), AllyCreate(display_name="Second"), None
        )
    await session.rollback()


async def test_idempotency_key_replays_the_creation(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    headers = {**employee(tokens, "alex"), "Idempotency-Key": "volunteer-1"}
    first = await client.post("/v1/allies", json=PROFILE, headers=headers)
    assert first.status_code == 201
    replay = await client.post("/v1/allies", json=PROFILE, headers=headers)
    assert replay.status_code == 201, replay.text
    assert replay.json() == first.json()
    assert len((await session.execute(select(Ally))).scalars().all()) == 1
    other_body = await client.post(
        "/v1/allies", json={**PROFILE, "bio": "Changed my mind"}, headers=headers
    )
    assert_problem(other_body, 422)
    # Without the key (or with a new one) the second profile is the usual 409.
    again = {**employee(tokens, "alex"), "Idempotency-Key": "volunteer-2"}
    assert_problem(await client.post("/v1/allies", json=PROFILE, headers=again), 409)
    assert_problem(
        await client.post("/v1/allies", json=PROFILE, headers=employee(tokens, "alex")), 409
    )
    # Keys belong to their caller: someone else's same key creates their own profile.
    blake = {**employee(tokens, "blake"), "Idempotency-Key": "volunteer-1"}
    assert (await client.post("/v1/allies", json=PROFILE, headers=blake)).status_code == 201


async def test_own_profile_read_and_patch_with_if_match(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await volunteer(client, tokens, "alex")
    headers = employee(tokens, "alex")
    read = await client.get(OWN, headers=headers)
    assert read.status_code == 200
    assert read.json()["display_name"] == "Alex Ally"
    etag = read.headers["etag"]

    changed = await client.patch(
        OWN,
        json={
            "bio": "Ask me about Parenting",
            "topics": ["Parenting", "parenting", "grief"],
            "department": "Sales",
            "max_open_requests": 5,
            "accepting": False,
            "pronouns": None,
        },
        headers={**headers, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["topics"] == ["parenting", "grief"]
    assert body["max_open_requests"] == 5
    assert body["accepting"] is False
    assert body["pronouns"] is None
    assert body["status"] == "applied"
    assert changed.headers["etag"] != etag
    stored = (await session.execute(select(Ally))).scalars().one()
    assert stored.department_key == "sales"
    assert "ask me about parenting" in stored.search_text

    stale = await client.patch(OWN, json={"bio": "x"}, headers={**headers, "If-Match": etag})
    assert_problem(stale, 412)
    unconditional = await client.patch(OWN, json={}, headers=headers)
    assert unconditional.status_code == 200
    assert unconditional.headers["etag"] == changed.headers["etag"]


async def test_patch_never_sets_status_and_refuses_clearing_required_fields(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await volunteer(client, tokens, "alex")
    headers = employee(tokens, "alex")
    assert_problem(await client.patch(OWN, json={"status": "active"}, headers=headers), 422)
    assert_problem(await client.patch(OWN, json={"display_name": None}, headers=headers), 422)
    assert_problem(await client.patch(OWN, json={"languages": None}, headers=headers), 422)
    assert (await client.get(OWN, headers=headers)).json()["status"] == "applied"


async def test_no_profile_is_404(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    assert_problem(await client.get(OWN, headers=employee(tokens, "nobody")), 404)
    assert_problem(
        await client.patch(OWN, json={"bio": "x"}, headers=employee(tokens, "nobody")), 404
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"display_name": ""},
        {"display_name": "x" * 101},
        {"timezone": "Mars/Olympus"},
        {"timezone": "../../etc/passwd"},
        {"languages": ["not a tag"]},
        {"languages": [f"l{i:02d}"[:2] + "x" for i in range(11)]},
        {"topics": [f"t{i}" for i in range(21)]},
        {"topics": ["x" * 65]},
        {"bio": "x" * 2001},
        {"contact_channels": [{"kind": "pigeon"}]},
        {"contact_channels": [{"kind": "email", "detail": "x" * 201}]},
        {"contact_channels": [{"kind": "email"}] * 6},
        {"availability": [{"weekday": 8, "start": "09:00", "end": "10:00"}]},
        {"availability": [{"weekday": 0, "start": "09:00", "end": "10:00"}]},
        {"availability": [{"weekday": 1, "start": "10:00", "end": "09:00"}]},
        {"availability": [{"weekday": 1, "start": "9:00", "end": "10:00"}]},
        {"availability": [{"weekday": 1, "start": "24:00", "end": "24:00"}]},
        {"availability": [{"weekday": 1, "start": "09:00", "end": "10:00"}] * 22},
        {"max_open_requests": 0},
        {"max_open_requests": 51},
    ],
)
async def test_invalid_profiles_are_422(
    client: httpx.AsyncClient, tokens: TokenFactory, fields: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/allies", json={**PROFILE, **fields}, headers=employee(tokens, "alex")
    )
    assert_problem(response, 422)


async def test_valid_edges_are_accepted(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await volunteer(
        client,
        tokens,
        "alex",
        languages=["EN-gb", "zh-hant-tw", "en-GB"],
        topics=["Stress"],
        timezone="America/Argentina/Buenos_Aires",
        availability=[{"weekday": 7, "start": "00:00", "end": "23:59"}],
        contact_channels=[{"kind": "in_person"}],
        max_open_requests=50,
    )
    assert created["languages"] == ["en-GB", "zh-Hant-TW"]
    assert created["topics"] == ["stress"]
    assert created["contact_channels"] == [{"kind": "in_person", "detail": None}]


async def test_unknown_fields_rejected_without_echo(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    headers = employee(tokens, "alex")
    response = await client.post(
        "/v1/allies", json={**PROFILE, "status": "active-secret-123"}, headers=headers
    )
    body = assert_problem(response, 422)
    assert "active-secret-123" not in response.text
    assert body["errors"][0]["loc"] == ["body", "status"]
    nested = await client.post(
        "/v1/allies",
        json={**PROFILE, "contact_channels": [{"kind": "chat", "owner": "nested-secret-456"}]},
        headers=headers,
    )
    assert_problem(nested, 422)
    assert "nested-secret-456" not in nested.text
    await volunteer(client, tokens, "alex")
    patch = await client.patch(OWN, json={"subject_ref": "ref-secret-789"}, headers=headers)
    assert_problem(patch, 422)
    assert "ref-secret-789" not in patch.text


async def test_invalid_value_is_not_echoed(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    response = await client.post(
        "/v1/allies",
        json={**PROFILE, "timezone": "Secret/Zone-4242"},
        headers=employee(tokens, "alex"),
    )
    assert_problem(response, 422)
    assert "Secret/Zone-4242" not in response.text


async def test_profile_routes_auth(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    await volunteer(client, tokens, "alex")
    assert_problem(await client.post("/v1/allies", json=PROFILE), 401)
    assert_problem(await client.get(OWN), 401)
    assert_problem(await client.patch(OWN, json={"bio": "x"}), 401)
    for headers in (tokens.analyst, tokens.integration):
        assert_problem(await client.post("/v1/allies", json=PROFILE, headers=headers), 403)
        assert_problem(await client.get(OWN, headers=headers), 403)
        assert_problem(await client.patch(OWN, json={"bio": "x"}, headers=headers), 403)
    # The same sub in another org has no profile there.
    other = tokens.headers("alex", "employee", org="globex")
    assert_problem(await client.get(OWN, headers=other), 404)
    assert_problem(await client.patch(OWN, json={"bio": "x"}, headers=other), 404)
    assert str(uuid.uuid4())
