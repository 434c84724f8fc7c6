"""accept, decline (re-match), complete (debrief), cancel, erase; counters follow every move."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    ContactRequestKey,
    RequesterLoad,
)
from allyapi.core.settings import Settings
from allyapi.feedback.models import RequestFeedback
from tests.contact_requests.factories import (
    CONTACT,
    MESSAGE,
    act,
    create,
    fresh,
    load_of,
    make_ally,
    make_resource,
    person,
)
from tests.helpers import TokenFactory, assert_problem

PATH = "/v1/contact-requests"
DEBRIEF: dict[str, Any] = {"signposted": True, "follow_up": False, "wellbeing": 4}


async def stored(session: AsyncSession, request_id: str) -> ContactRequest:
    await fresh(session)
    row = await session.get(ContactRequest, uuid.UUID(request_id))
    assert row is not None
    return row


async def erased_statistics(session: AsyncSession) -> ContactRequest:
    """The one row an erased request leaves behind."""
    await fresh(session)
    query = select(ContactRequest).where(col(ContactRequest.erased_at).is_not(None))
    return (await session.execute(query)).scalars().one()


async def requester_load(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    items = (await client.get("/v1/me/contact-requests", headers=headers)).json()["items"]
    return sum(item["status"] in ("pending", "accepted") for item in items)


async def test_accept_then_complete_with_debrief(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    robin = person(tokens, "robin")
    resource = await make_resource(session, "Samaritans", "crisis", "GB")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    accepted = await act(client, created["id"], "accept", robin)
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    assert_problem(await act(client, created["id"], "accept", robin), 409)
    assert_problem(await act(client, created["id"], "decline", robin, {"reason": "other"}), 409)
    debrief = {**DEBRIEF, "resource_ids": [str(resource.id), str(resource.id)]}
    completed = await act(client, created["id"], "complete", robin, debrief)
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"
    row = await stored(session, created["id"])
    assert (row.signposted, row.follow_up, row.wellbeing) == (True, False, 4)
    assert row.signposted_resource_ids == [str(resource.id)]
    assert row.closed_at is not None
    assert row.content_purge_at is not None
    assert await load_of(session, ally.id) == 0
    assert await requester_load(client, tokens.employee) == 0
    assert_problem(await act(client, created["id"], "complete", robin, DEBRIEF), 409)
    assert_problem(await act(client, created["id"], "cancel", tokens.employee), 409)


async def test_complete_needs_an_accepted_request_and_a_valid_debrief(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    robin = person(tokens, "robin")
    foreign = await make_resource(session, "Elsewhere", "crisis", None, org="globex")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    assert_problem(await act(client, created["id"], "complete", robin, DEBRIEF), 409)
    await act(client, created["id"], "accept", robin)
    bad = [
        {"signposted": True},
        {**DEBRIEF, "wellbeing": 0},
        {**DEBRIEF, "wellbeing": 6},
        {**DEBRIEF, "resource_ids": [str(uuid.uuid4()) for _ in range(11)]},
        {**DEBRIEF, "resource_ids": [str(foreign.id)]},
        {**DEBRIEF, "notes": "free text is not part of the debrief"},
    ]
    for body in bad:
        assert_problem(await act(client, created["id"], "complete", robin, body), 422)
    assert (await stored(session, created["id"])).status == "accepted"


async def test_decline_rematches_to_another_ally_never_back(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    first = await make_ally(session, settings, "robin", name="A")
    second = await make_ally(session, settings, "sasha", name="B")
    created = await create(client, tokens.employee, ally_id=str(first.id))
    declined = await act(
        client, created["id"], "decline", person(tokens, "robin"), {"reason": "at_capacity"}
    )
    assert declined.status_code == 204
    row = await stored(session, created["id"])
    assert (row.status, row.ally_id) == ("pending", second.id)
    assert row.declined_by == [str(first.id)]
    assert row.decline_reason == "at_capacity"
    assert (await load_of(session, first.id), await load_of(session, second.id)) == (0, 1)
    # The first ally lost it: 404 for them now; the second sees it.
    assert_problem(
        await client.get(f"{PATH}/{created['id']}", headers=person(tokens, "robin")), 404
    )
    sasha = person(tokens, "sasha")
    assert (await client.get(f"{PATH}/{created['id']}", headers=sasha)).status_code == 200
    # Nobody left who has not declined: the request ends declined, slots freed.
    final = await act(client, created["id"], "decline", sasha, {"reason": "conflict_of_interest"})
    assert final.status_code == 204
    row = await stored(session, created["id"])
    assert (row.status, row.ally_id) == ("declined", None)
    assert row.closed_at is not None
    assert (await load_of(session, first.id), await load_of(session, second.id)) == (0, 0)
    assert await requester_load(client, tokens.employee) == 0
    mine = (await client.get(f"{PATH}/{created['id']}", headers=tokens.employee)).json()
    assert (mine["status"], mine["ally"]) == ("declined", None)


async def test_decline_needs_a_known_reason(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    robin = person(tokens, "robin")
    for body in ({}, {"reason": "bored"}, {"reason": "other", "note": MESSAGE}):
        response = await act(client, created["id"], "decline", robin, body)
        assert_problem(response, 422)
        assert MESSAGE not in response.text


async def test_pausing_an_ally_rematches_or_declines_their_pending_requests(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    leaving = await make_ally(session, settings, "robin", name="A")
    created = await create(client, tokens.employee, ally_id=str(leaving.id))
    alone = await create(client, person(tokens, "emp-2"), ally_id=str(leaving.id), topic="grief")
    other = await make_ally(session, settings, "sasha", name="B", capacity=1)
    paused = await client.post(f"/v1/allies/{leaving.id}/pause", headers=tokens.coordinator)
    assert paused.status_code == 200, paused.text
    rows = {r: await stored(session, r) for r in (created["id"], alone["id"])}
    moved, unplaced = rows[created["id"]], rows[alone["id"]]
    assert {moved.ally_id, unplaced.ally_id} == {other.id, None}
    assert {moved.status, unplaced.status} == {"pending", "declined"}
    assert await load_of(session, leaving.id) == 0
    assert await load_of(session, other.id) == 1


async def test_cancel_by_the_requester_only(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    robin = person(tokens, "robin")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    assert_problem(await act(client, created["id"], "cancel", robin), 404)
    assert_problem(await act(client, created["id"], "cancel", person(tokens, "emp-2")), 404)
    assert_problem(await act(client, created["id"], "cancel", tokens.other_org_employee), 404)
    assert_problem(await act(client, created["id"], "cancel", tokens.coordinator), 403)
    assert_problem(await act(client, created["id"], "cancel", {}), 401)
    await act(client, created["id"], "accept", robin)
    cancelled = await act(client, created["id"], "cancel", tokens.employee)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["message"] == MESSAGE
    assert await load_of(session, ally.id) == 0
    assert_problem(await act(client, created["id"], "cancel", tokens.employee), 409)
    assert_problem(await act(client, created["id"], "accept", robin), 409)


@pytest.mark.parametrize("action", ["accept", "decline", "complete"])
async def test_only_the_assigned_ally_acts(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    action: str,
) -> None:
    ally = await make_ally(session, settings, "robin")
    await make_ally(session, settings, "sasha")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    body = {"accept": None, "decline": {"reason": "other"}, "complete": DEBRIEF}[action]
    request_id = created["id"]
    for headers in (tokens.employee, person(tokens, "sasha"), tokens.other_org_employee):
        assert_problem(await act(client, request_id, action, headers, body), 404)
    for headers in (tokens.coordinator, tokens.analyst, tokens.integration):
        assert_problem(await act(client, request_id, action, headers, body), 403)
    assert_problem(await act(client, request_id, action, {}, body), 401)
    assert_problem(await act(client, str(uuid.uuid4()), action, person(tokens, "robin"), body), 404)
    assert (await stored(session, request_id)).status == "pending"


async def test_erase_destroys_content_at_once_and_hides_the_request(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    robin = person(tokens, "robin")
    created = await create(client, tokens.employee, ally_id=str(ally.id), contact_detail=CONTACT)
    path = f"{PATH}/{created['id']}"
    await act(client, created["id"], "accept", robin)
    await client.post(f"{path}/messages", json={"body": "hello"}, headers=tokens.employee)
    await client.get(path, headers=robin)  # an access-log entry
    assert_problem(await client.delete(path, headers=robin), 404)
    assert_problem(await client.delete(path, headers=tokens.coordinator), 403)
    assert_problem(await client.delete(path), 401)
    assert_problem(await client.delete(path, headers=tokens.other_org_employee), 404)

    assert (await client.delete(path, headers=tokens.employee)).status_code == 204
    for headers in (tokens.employee, robin):
        assert_problem(await client.get(path, headers=headers), 404)
        assert_problem(await client.get(f"{path}/messages", headers=headers), 404)
    assert_problem(await client.get(f"{path}/access-log", headers=tokens.employee), 404)
    assert_problem(await client.delete(path, headers=tokens.employee), 404)
    assert (await client.get("/v1/me/contact-requests", headers=tokens.employee)).json()[
        "items"
    ] == []
    assert (await client.get(PATH, headers=robin)).json()["items"] == []

    await fresh(session)
    assert await session.get(ContactRequest, uuid.UUID(created["id"])) is None
    row = await erased_statistics(session)  # what remains, under a new random id
    assert row.id != uuid.UUID(created["id"])
    assert (row.message_sealed, row.contact_detail_sealed, row.alias_sealed) == (None, None, None)
    assert row.status == "cancelled"
    assert (row.topic, row.urgency) == ("stress", "normal")
    for value in (row.created_at, row.accepted_at, row.closed_at, row.erased_at):
        assert value is not None
        assert (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0)
    assert row.requester_ref == "erased"
    for table in (ContactMessage, AccessLogEntry, ContactRequestKey, RequesterLoad):
        assert (await session.execute(select(table))).first() is None
    assert await load_of(session, ally.id) == 0
    assert await requester_load(client, tokens.employee) == 0


async def test_erasing_a_completed_request_keeps_ratings_but_not_the_comment(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin")
    robin = person(tokens, "robin")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    await act(client, created["id"], "accept", robin)
    await act(client, created["id"], "complete", robin, DEBRIEF)
    feedback = {"rating": 5, "felt_heard": True, "would_recommend": True, "comment": MESSAGE}
    given = await act(client, created["id"], "feedback", tokens.employee, feedback)
    assert given.status_code == 201, given.text
    deleted = await client.delete(f"{PATH}/{created['id']}", headers=tokens.employee)
    assert deleted.status_code == 204
    await fresh(session)
    row = (await session.execute(select(RequestFeedback))).scalars().one()
    assert (row.rating, row.comment_sealed) == (5, None)
    statistics = await erased_statistics(session)
    assert (statistics.status, statistics.wellbeing) == ("completed", DEBRIEF["wellbeing"])
    assert row.request_id == statistics.id  # the ratings follow the statistics, not the old id
