"""Roster sync: allies whose sub is not on the HRIS roster are retired (leavers)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.allies.schemas import MAX_ROSTER, RosterSync
from allyapi.contact_requests.models import ContactRequest
from tests.allies.factories import active_ally, employee, volunteer
from tests.helpers import ORG, TokenFactory, assert_problem

PATH = "/v1/allies/roster-sync"


async def status_of(client: httpx.AsyncClient, tokens: TokenFactory, sub: str) -> str:
    response = await client.get("/v1/me/ally-profile", headers=employee(tokens, sub))
    status: str = response.json()["status"]
    return status


async def test_leavers_are_retired_and_the_rest_kept(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    stayer = await active_ally(client, tokens, "stayer", display_name="Stayer")
    await volunteer(client, tokens, "applicant", display_name="Applicant")
    leaver = await active_ally(client, tokens, "leaver", display_name="Leaver")
    await active_ally(client, tokens, "gone", display_name="Gone")
    await client.post(
        f"/v1/allies/{(await active_ally(client, tokens, 'old', display_name='Old'))['id']}/retire",
        headers=tokens.coordinator,
    )
    # Same sub in another org: not this org's roster's business.
    other_org = await client.post(
        "/v1/allies",
        json={"display_name": "Elsewhere"},
        headers=tokens.headers("leaver", "employee", org="globex"),
    )
    assert other_org.status_code == 201
    pending = ContactRequest(
        org_id=ORG,
        requester_ref="r" * 64,
        ally_id=uuid.UUID(leaver["id"]),
        topic="stress",
        urgency="normal",
    )
    session.add(pending)
    pending_id = pending.id
    await session.commit()

    roster = {"subs": ["stayer", "applicant", "someone-not-an-ally", " stayer "]}
    response = await client.post(PATH, json=roster, headers=tokens.integration)
    assert response.status_code == 200, response.text
    assert response.json() == {"retired": 2, "kept": 2}

    assert await status_of(client, tokens, "stayer") == "active"
    assert await status_of(client, tokens, "applicant") == "applied"
    assert await status_of(client, tokens, "leaver") == "retired"
    assert await status_of(client, tokens, "gone") == "retired"
    elsewhere = await client.get(
        "/v1/me/ally-profile", headers=tokens.headers("leaver", "employee", org="globex")
    )
    assert elsewhere.json()["status"] == "applied"
    session.expire_all()
    handed_back = await session.get(ContactRequest, pending_id)
    assert handed_back is not None
    # Re-matched (contact_requests/lifecycle.py) to the one listed ally left with room.
    assert handed_back.ally_id == uuid.UUID(stayer["id"])
    retired = (await session.execute(select(Ally).where(Ally.status == "retired"))).scalars().all()
    assert all(ally.retired_at is not None for ally in retired)
    assert len(retired) == 3

    again = await client.post(PATH, json=roster, headers=tokens.integration)
    assert again.json() == {"retired": 0, "kept": 2}


async def test_the_full_50000_roster_in_one_call(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await active_ally(client, tokens, "emp-49999", display_name="Kept")
    await active_ally(client, tokens, "leaver", display_name="Leaver")
    subs = [f"emp-{index:05d}" for index in range(MAX_ROSTER)]
    response = await client.post(PATH, json={"subs": subs}, headers=tokens.integration)
    assert response.status_code == 200, response.text
    assert response.json() == {"retired": 1, "kept": 1}
    with pytest.raises(ValidationError):
        RosterSync(subs=[*subs, "one-too-many"])


async def test_roster_bad_input(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    await active_ally(client, tokens, "alex")
    for body in (
        {"subs": []},
        {},
        {"subs": ["x" * 257]},
        {"subs": [""]},
        {"subs": "alex"},
        {"subs": ["alex"], "dry_run": True},
    ):
        assert_problem(await client.post(PATH, json=body, headers=tokens.integration), 422)
    # Nobody was retired by a refused call.
    assert await status_of(client, tokens, "alex") == "active"


async def test_roster_auth(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    await active_ally(client, tokens, "alex")
    body = {"subs": ["someone-else"]}
    assert_problem(await client.post(PATH, json=body), 401)
    for headers in (tokens.employee, tokens.coordinator, tokens.analyst):
        assert_problem(await client.post(PATH, json=body, headers=headers), 403)
    # Another org's integration only ever touches its own org.
    other = tokens.headers("hris-9", "integration", org="globex")
    response = await client.post(PATH, json=body, headers=other)
    assert response.json() == {"retired": 0, "kept": 0}
    assert await status_of(client, tokens, "alex") == "active"
