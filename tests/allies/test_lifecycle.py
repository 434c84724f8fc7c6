"""applied → active ⇄ paused → retired, and the hand-back of pending requests."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from tests.allies.factories import active_ally, employee, volunteer
from tests.helpers import ORG, TokenFactory, assert_problem


async def act(
    client: httpx.AsyncClient, ally_id: str, action: str, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(f"/v1/allies/{ally_id}/{action}", headers=headers)


async def test_full_lifecycle(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ally = await volunteer(client, tokens, "alex")
    approved = await act(client, ally["id"], "approve", tokens.coordinator)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
    assert approved.json()["approved_at"] is not None
    assert approved.json()["listed"] is True
    assert approved.headers["etag"]
    paused = await act(client, ally["id"], "pause", tokens.coordinator)
    assert (paused.json()["status"], paused.json()["listed"]) == ("paused", False)
    resumed = await act(client, ally["id"], "resume", tokens.coordinator)
    assert (resumed.json()["status"], resumed.json()["listed"]) == ("active", True)
    retired = await act(client, ally["id"], "retire", tokens.coordinator)
    assert retired.json()["status"] == "retired"
    assert retired.json()["listed"] is False
    assert retired.headers["etag"] != approved.headers["etag"]


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "pause"),
        ([], "resume"),
        (["approve"], "approve"),
        (["approve"], "resume"),
        (["approve", "pause"], "pause"),
        (["approve", "pause"], "approve"),
        (["retire"], "retire"),
        (["retire"], "approve"),
        (["approve", "retire"], "resume"),
        (["approve", "retire"], "pause"),
    ],
)
async def test_invalid_transitions_are_409(
    client: httpx.AsyncClient, tokens: TokenFactory, setup: list[str], action: str
) -> None:
    ally = await volunteer(client, tokens, "alex")
    for step in setup:
        assert (await act(client, ally["id"], step, tokens.coordinator)).status_code == 200
    assert_problem(await act(client, ally["id"], action, tokens.coordinator), 409)


async def test_an_applied_ally_can_be_retired(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await volunteer(client, tokens, "alex")
    assert (await act(client, ally["id"], "retire", tokens.coordinator)).status_code == 200
    stored = (await session.execute(select(Ally))).scalars().one()
    assert stored.retired_at is not None


async def test_the_ally_pauses_and_resumes_themselves_only(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    ally = await active_ally(client, tokens, "alex")
    me = employee(tokens, "alex")
    someone_else = employee(tokens, "blake")
    assert_problem(await act(client, ally["id"], "pause", someone_else), 403)
    paused = await act(client, ally["id"], "pause", me)
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    assert_problem(await act(client, ally["id"], "resume", someone_else), 403)
    assert (await act(client, ally["id"], "resume", me)).json()["status"] == "active"
    # Approving and retiring stay with coordinators, even on one's own profile.
    assert_problem(await act(client, ally["id"], "retire", me), 403)
    assert_problem(await act(client, ally["id"], "approve", me), 403)


async def test_a_coordinators_pause_is_a_suspension_the_ally_cannot_lift(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    ben = await active_ally(client, tokens, "ben")
    me = employee(tokens, "ben")
    paused = await act(client, ben["id"], "pause", tokens.coordinator)
    assert (paused.json()["status"], paused.json()["paused_by"]) == ("paused", "coordinator")

    body = assert_problem(await act(client, ben["id"], "resume", me), 403)
    assert "coordinator" in body["detail"]
    assert_problem(await act(client, ben["id"], "pause", me), 409)  # already paused
    own = (await client.get("/v1/me/ally-profile", headers=me)).json()
    assert (own["status"], own["paused_by"], own["listed"]) == ("paused", "coordinator", False)
    directory = (await client.get("/v1/allies", headers=tokens.employee)).json()["items"]
    assert ben["id"] not in [ally["id"] for ally in directory]
    assert_problem(await client.get(f"/v1/allies/{ben['id']}", headers=tokens.employee), 404)

    resumed = await act(client, ben["id"], "resume", tokens.coordinator)
    assert (resumed.json()["status"], resumed.json()["paused_by"]) == ("active", None)
    assert resumed.json()["listed"] is True


async def test_an_allys_own_pause_stays_theirs_and_a_coordinator_can_lift_or_escalate_it(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    ally = await active_ally(client, tokens, "alex")
    me = employee(tokens, "alex")
    own = await act(client, ally["id"], "pause", me)
    assert own.json()["paused_by"] == "ally"
    assert (await act(client, ally["id"], "resume", tokens.coordinator)).json()["status"] == (
        "active"
    )

    await act(client, ally["id"], "pause", me)
    suspended = await act(client, ally["id"], "pause", tokens.coordinator)
    assert suspended.status_code == 200, suspended.text
    assert (suspended.json()["status"], suspended.json()["paused_by"]) == ("paused", "coordinator")
    assert_problem(await act(client, ally["id"], "resume", me), 403)
    assert_problem(await act(client, ally["id"], "pause", tokens.coordinator), 409)
    retired = await act(client, ally["id"], "retire", tokens.coordinator)
    assert (retired.json()["status"], retired.json()["paused_by"]) == ("retired", None)


async def test_paused_by_always_matches_the_status_in_the_database(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    """The CHECK constraint: a paused ally names who paused them, nobody else does."""
    ally = await active_ally(client, tokens, "alex")
    row = await session.get(Ally, uuid.UUID(ally["id"]))
    assert row is not None
    row.status = "paused"  # without paused_by
    with pytest.raises(IntegrityError):
        await session.commit()
    await session.rollback()
    row = await session.get(Ally, uuid.UUID(ally["id"]))
    assert row is not None
    row.paused_by = "coordinator"  # while active
    with pytest.raises(IntegrityError):
        await session.commit()


def _request(ally_id: uuid.UUID | None, status: str, org: str = ORG) -> ContactRequest:
    return ContactRequest(
        org_id=org,
        requester_ref="r" * 64,
        ally_id=ally_id,
        topic="stress",
        urgency="normal",
        status=status,
    )


@pytest.mark.parametrize("action", ["pause", "retire"])
async def test_pausing_or_retiring_hands_pending_requests_back(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, action: str
) -> None:
    ally = await active_ally(client, tokens, "alex")
    other = await active_ally(client, tokens, "blake", display_name="Blake")
    ally_id, other_id = uuid.UUID(ally["id"]), uuid.UUID(other["id"])
    pending = _request(ally_id, "pending")
    accepted = _request(ally_id, "accepted")
    elsewhere = _request(other_id, "pending")
    session.add_all([pending, accepted, elsewhere])
    pending_id, accepted_id, elsewhere_id = pending.id, accepted.id, elsewhere.id
    stored = await session.get(Ally, ally_id)
    assert stored is not None
    stored.open_requests = 2
    await session.commit()

    assert (await act(client, ally["id"], action, tokens.coordinator)).status_code == 200

    session.expire_all()
    handed_back = await session.get(ContactRequest, pending_id)
    assert handed_back is not None
    # Re-matched (contact_requests/lifecycle.py): Blake is listed and has room.
    assert (handed_back.status, handed_back.ally_id) == ("pending", other_id)
    kept = await session.get(ContactRequest, accepted_id)
    assert kept is not None
    assert (kept.status, kept.ally_id) == ("accepted", ally_id)
    untouched = await session.get(ContactRequest, elsewhere_id)
    assert untouched is not None
    assert untouched.ally_id == other_id
    refreshed = await session.get(Ally, ally_id)
    assert refreshed is not None
    assert refreshed.open_requests == 1


async def test_lifecycle_auth(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ally = await volunteer(client, tokens, "alex")
    for action in ("approve", "pause", "resume", "retire"):
        assert_problem(await client.post(f"/v1/allies/{ally['id']}/{action}"), 401)
        for headers in (tokens.analyst, tokens.integration):
            assert_problem(await act(client, ally["id"], action, headers), 403)
        # Another organisation's coordinator: the id does not exist for them.
        assert_problem(await act(client, ally["id"], action, tokens.other_org_coordinator), 404)
        assert_problem(await act(client, str(uuid.uuid4()), action, tokens.coordinator), 404)
        assert_problem(await act(client, "not-a-uuid", action, tokens.coordinator), 422)
    for action in ("approve", "retire"):
        assert_problem(await act(client, ally["id"], action, tokens.employee), 403)
    for action in ("pause", "resume"):
        # The ally's own sub in another org is someone else: 404 there.
        other_org_self = tokens.headers("alex", "employee", org="globex")
        assert_problem(await act(client, ally["id"], action, other_org_self), 404)
    # Nothing above changed the profile.
    own = await client.get("/v1/me/ally-profile", headers=employee(tokens, "alex"))
    assert own.json()["status"] == "applied"
