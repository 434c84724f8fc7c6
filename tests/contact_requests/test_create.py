"""POST /v1/contact-requests: assignment, capacity, the requester cap, signposting, input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import AllyStatus
from allyapi.allies.ranking import refresh_rank_bands, tiebreak, tiebreak_key
from allyapi.contact_requests.models import ContactRequest, ContactRequestKey, RequesterLoad
from allyapi.core.auth.pseudonym import requester_ref
from allyapi.core.auth.tokens import dev_subject
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.training.models import TrainingCourse
from tests.contact_requests.factories import (
    ALIAS,
    BODY,
    CONTACT,
    MESSAGE,
    create,
    load_of,
    make_ally,
    make_resource,
    person,
)
from tests.helpers import ORG, OTHER_ORG, TokenFactory, assert_problem

PATH = "/v1/contact-requests"


async def test_create_to_a_chosen_ally(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "robin", name="Robin")
    response = await client.post(
        PATH,
        json={
            **BODY,
            "ally_id": str(ally.id),
            "topic": "Stress",
            "language": "EN-gb",
            "preferred_channel": "chat",
            "contact_detail": CONTACT,
            "alias": ALIAS,
        },
        headers=tokens.employee,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/contact-requests/{body['id']}"
    assert body["status"] == "pending"
    assert (body["topic"], body["language"], body["urgency"]) == ("stress", "en-GB", "normal")
    assert (body["message"], body["contact_detail"], body["alias"]) == (MESSAGE, CONTACT, ALIAS)
    assert body["ally"]["display_name"] == "Robin"
    assert body["resources"] is None
    assert "requester_ref" not in body
    assert await load_of(session, ally.id) == 1
    load = await session.get(
        RequesterLoad,
        (ORG, requester_ref(settings.pseudonym_key_bytes, dev_subject(settings, ORG, "emp-1"))),
    )
    assert load is not None
    assert load.open_requests == 1


async def test_stored_row_holds_no_plaintext_and_no_sub(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin")
    created = await create(client, tokens.employee, contact_detail=CONTACT, alias=ALIAS)
    row = await session.get(ContactRequest, uuid.UUID(created["id"]))
    assert row is not None
    stored = " ".join(str(value) for value in row.model_dump().values())
    for secret in (MESSAGE, CONTACT, ALIAS, "emp-1"):
        assert secret not in stored
    assert row.requester_ref == requester_ref(
        settings.pseudonym_key_bytes, dev_subject(settings, ORG, "emp-1")
    )
    assert row.message_sealed is not None
    assert row.message_sealed.startswith("rk1:")  # the request's own data key...
    key = await session.get(ContactRequestKey, row.id)
    assert key is not None
    assert key.key_sealed.startswith("k2.")  # ...sealed under the newest configured key


async def test_auto_match_prefers_topic_language_and_lighter_band_outside_my_department(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    database: Database,
) -> None:
    """The suggestions' ranking (band snapshot, then tie-break) picks; the live count decides
    who can take one more: the lighter-band ally until they are full, then the next."""
    # tokens.employee works in Marketing.
    same_dept = await make_ally(session, settings, "a", name="A", department="Marketing")
    busy = await make_ally(session, settings, "b", name="B", open_requests=2)
    free = await make_ally(session, settings, "c", name="C", open_requests=0)
    await make_ally(session, settings, "d", name="D", topics=["grief"])
    await refresh_rank_bands(database, settings)  # C band 0, B band 1 (2 of 3)
    for _ in range(3):
        assert (await create(client, tokens.employee))["ally_id"] == str(free.id)
    # C is full now (live), though its snapshot still says band 0: B takes the next one.
    other = person(tokens, "emp-2", department="Marketing")
    assert (await create(client, other))["ally_id"] == str(busy.id)
    assert same_dept.id != busy.id


async def test_auto_match_with_nobody_free_is_409_with_resources(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "full", capacity=1, open_requests=1)
    await make_resource(session, "Samaritans", "crisis", "GB")
    await make_resource(session, "Crisis US", "crisis", "US")
    await make_resource(session, "EAP", "eap", None)
    response = await client.post(PATH, json=BODY, headers=tokens.employee)
    body = assert_problem(response, 409)
    assert body["type"].endswith("/no-ally-available")
    assert sorted(r["name"] for r in body["resources"]) == ["EAP", "Samaritans"]
    assert (await session.execute(select(ContactRequest))).first() is None
    # Nothing was kept: the requester's slot is free again.
    load = (await session.execute(select(RequesterLoad))).scalars().first()
    assert load is None or load.open_requests == 0


async def test_chosen_ally_at_capacity_or_not_accepting_is_409_with_alternatives(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    database: Database,
) -> None:
    full = await make_ally(session, settings, "full", capacity=1, open_requests=1)
    closed = await make_ally(session, settings, "closed", accepting=False)
    alts = [await make_ally(session, settings, f"alt{i}", name=f"Alt {i}") for i in range(4)]
    await refresh_rank_bands(database, settings)  # "full" is full in the snapshot too
    key = tiebreak_key(settings.pseudonym_key_bytes)
    day = datetime.now(UTC).date()
    best = sorted(alts, key=lambda ally: tiebreak(key, ally.id, day))[:3]
    for ally in (full, closed):
        response = await client.post(
            PATH, json={**BODY, "ally_id": str(ally.id)}, headers=tokens.employee
        )
        body = assert_problem(response, 409)
        assert body["type"].endswith("/ally-unavailable")
        names = [alt["display_name"] for alt in body["alternatives"]]
        assert names == [ally.display_name for ally in best]
        assert set(body["alternatives"][0]) >= {"id", "display_name", "topics", "accepting"}
        assert "open_requests" not in body["alternatives"][0]
        assert "max_open_requests" not in body["alternatives"][0]
    assert await load_of(session, full.id) == 1


async def test_unknown_unlisted_or_foreign_ally_is_404(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    paused = await make_ally(session, settings, "paused", status=AllyStatus.paused)
    applied = await make_ally(session, settings, "applied", status=AllyStatus.applied)
    foreign = await make_ally(session, settings, "foreign", org=OTHER_ORG)
    untrained = await make_ally(session, settings, "untrained")
    session.add(TrainingCourse(org_id=ORG, name="Mental Health First Aid", required=True))
    await session.commit()
    for ally_id in (paused.id, applied.id, foreign.id, untrained.id, uuid.uuid4()):
        response = await client.post(
            PATH, json={**BODY, "ally_id": str(ally_id)}, headers=tokens.employee
        )
        assert_problem(response, 404)


async def test_requester_cap_is_429_with_retry_after(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin", capacity=10)
    for _ in range(settings.max_open_requests):
        await create(client, tokens.employee)
    response = await client.post(PATH, json=BODY, headers=tokens.employee)
    assert_problem(response, 429)
    assert int(response.headers["retry-after"]) > 0
    # Someone else is not affected; closing one frees a slot.
    await create(client, person(tokens, "emp-2"))
    mine = (await client.get("/v1/me/contact-requests", headers=tokens.employee)).json()
    cancelled = await client.post(
        f"{PATH}/{mine['items'][0]['id']}/cancel", headers=tokens.employee
    )
    assert cancelled.status_code == 200
    await create(client, tokens.employee)


async def test_refusals_keep_their_order_and_take_no_slot(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    """The create claims the requester's slot before it knows whether the ally exists (the
    fast path reads reachability only on the way to an error), so: an unknown ally is still
    a 404 before the cap's 429, a full ally is a 409, and no refusal keeps a slot."""
    full = await make_ally(session, settings, "full", capacity=1)
    room = await make_ally(session, settings, "room", capacity=10)
    await create(client, person(tokens, "emp-9"), ally_id=str(full.id))  # someone else: full
    for _ in range(3):  # refusals roll back the requester slot they claimed first
        unknown = {**BODY, "ally_id": str(uuid.uuid4())}
        assert_problem(await client.post(PATH, json=unknown, headers=tokens.employee), 404)
        at_capacity = {**BODY, "ally_id": str(full.id)}
        assert_problem(await client.post(PATH, json=at_capacity, headers=tokens.employee), 409)
    assert await load_of(session, full.id) == 1
    for _ in range(settings.max_open_requests):
        await create(client, tokens.employee, ally_id=str(room.id))
    unknown = {**BODY, "ally_id": str(uuid.uuid4())}
    assert_problem(await client.post(PATH, json=unknown, headers=tokens.employee), 404)
    at_capacity = {**BODY, "ally_id": str(full.id)}
    assert_problem(await client.post(PATH, json=at_capacity, headers=tokens.employee), 429)
    assert await load_of(session, room.id) == settings.max_open_requests


async def test_high_urgency_signposts_crisis_and_professional_help_for_my_country(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin", capacity=10)
    await make_resource(session, "Samaritans", "crisis", "GB")
    await make_resource(session, "988 Lifeline", "crisis", "US")
    await make_resource(session, "Find a therapist", "professional", None)
    await make_resource(session, "Sleep guide", "guide", None)
    await make_resource(session, "EAP", "eap", "GB")
    created = await create(client, tokens.employee, urgency="high")
    assert [r["name"] for r in created["resources"]] == ["Samaritans", "Find a therapist"]
    us = await create(client, person(tokens, "emp-us", country="us"), urgency="high")
    assert [r["name"] for r in us["resources"]] == ["988 Lifeline", "Find a therapist"]
    nowhere = await create(client, person(tokens, "emp-x"), urgency="high")
    assert [r["name"] for r in nowhere["resources"]] == ["Find a therapist"]
    normal = await create(client, person(tokens, "emp-y", country="GB"))
    assert normal["resources"] is None
    read = await client.get(f"{PATH}/{created['id']}", headers=tokens.employee)
    assert [r["name"] for r in read.json()["resources"]] == ["Samaritans", "Find a therapist"]


async def test_invalid_input_is_422_and_never_echoed(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin")
    cases = [
        {**BODY, "anonymous": True, "contact_detail": CONTACT},
        {**BODY, "message": MESSAGE + "x" * 4000},
        {**BODY, "message": ""},
        {**BODY, "contact_detail": CONTACT + "9" * 300},
        {**BODY, "alias": ALIAS * 30},
        {**BODY, "urgency": "panic " + MESSAGE},
        {**BODY, "preferred_channel": "pigeon"},
        {**BODY, "topic": MESSAGE},
        {**BODY, "language": "not a language " + MESSAGE},
        {**BODY, "status": "accepted", "requester_ref": MESSAGE},
        {"topic": "stress"},
        {**BODY, "ally_id": "not-a-uuid " + MESSAGE},
    ]
    for payload in cases:
        response = await client.post(PATH, json=payload, headers=tokens.employee)
        assert_problem(response, 422)
        assert MESSAGE not in response.text
        assert CONTACT not in response.text
        assert "pigeon" not in response.text
    assert (await session.execute(select(ContactRequest))).first() is None


async def test_oversize_body_is_413(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    payload = {**BODY, "message": "x" * (settings.max_body_bytes + 10)}
    response = await client.post(PATH, json=payload, headers=tokens.employee)
    assert_problem(response, 413)


async def test_who_may_create(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin")
    assert_problem(await client.post(PATH, json=BODY), 401)
    assert_problem(await client.post(PATH, json=BODY, headers={"Authorization": "Bearer x"}), 401)
    for headers in (tokens.coordinator, tokens.analyst, tokens.integration):
        assert_problem(await client.post(PATH, json=BODY, headers=headers), 403)
    # Another org's employee has no allies here: nobody to match.
    assert_problem(await client.post(PATH, json=BODY, headers=tokens.other_org_employee), 409)
