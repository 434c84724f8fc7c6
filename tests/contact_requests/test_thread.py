"""The message thread (docs/privacy.md, P4) and the access log (P5)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import ContactMessage
from allyapi.contact_requests.thread import MAX_MESSAGES
from allyapi.core.privacy.crypto import Cipher, DecryptionError, aad_for
from allyapi.core.settings import Settings
from tests.contact_requests.factories import (
    MESSAGE,
    act,
    create,
    data_key_of,
    make_ally,
    person,
)
from tests.helpers import TokenFactory, assert_problem

PATH = "/v1/contact-requests"
DEBRIEF = {"signposted": False, "wellbeing": 3}


async def assigned(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> tuple[str, dict[str, str]]:
    ally = await make_ally(session, settings, "robin", name="Robin Ally")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    return f"{PATH}/{created['id']}", person(tokens, "robin")


async def test_a_conversation_in_the_thread(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    path, robin = await assigned(client, tokens, session, settings)
    first = await client.post(
        f"{path}/messages", json={"body": "one more thing"}, headers=tokens.employee
    )
    assert first.status_code == 201, first.text
    assert first.json()["author"] == "requester"
    # The ally answers once they accepted.
    assert_problem(await client.post(f"{path}/messages", json={"body": "hi"}, headers=robin), 409)
    await act(client, path.rsplit("/", 1)[1], "accept", robin)
    reply = await client.post(f"{path}/messages", json={"body": "I am here"}, headers=robin)
    assert reply.status_code == 201
    assert reply.json()["author"] == "ally"

    for headers in (tokens.employee, robin):
        thread = await client.get(f"{path}/messages", headers=headers)
        assert thread.status_code == 200
        assert [(m["author"], m["body"]) for m in thread.json()["items"]] == [
            ("requester", "one more thing"),
            ("ally", "I am here"),
        ]
    rows = (await session.execute(select(ContactMessage))).scalars().all()
    key = await data_key_of(session, settings, rows[0].request_id)
    for row in rows:
        assert "one more thing" not in row.body_sealed
        assert "I am here" not in row.body_sealed
        aad = aad_for("contact_messages", row.id, "body")
        assert key.open(row.body_sealed, aad)
        with pytest.raises(DecryptionError):  # the request's own key, not the configured ones
            Cipher(settings.data_key_ring).open(row.body_sealed, aad)


async def test_thread_pagination_oldest_first(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    path, _ = await assigned(client, tokens, session, settings)
    for index in range(3):
        await client.post(f"{path}/messages", json={"body": f"m{index}"}, headers=tokens.employee)
    page = (await client.get(f"{path}/messages?limit=2", headers=tokens.employee)).json()
    assert [m["body"] for m in page["items"]] == ["m0", "m1"]
    rest = (
        await client.get(
            f"{path}/messages?limit=2&cursor={page['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert [m["body"] for m in rest["items"]] == ["m2"]
    assert rest["next_cursor"] is None


async def test_thread_limits(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    path, _robin = await assigned(client, tokens, session, settings)
    request_id = uuid.UUID(path.rsplit("/", 1)[1])
    for body in ({"body": ""}, {"body": MESSAGE + "x" * 4000}, {"body": "a", "author": "ally"}, {}):
        response = await client.post(f"{path}/messages", json=body, headers=tokens.employee)
        assert_problem(response, 422)
        assert MESSAGE not in response.text
    cipher = Cipher(settings.data_key_ring)
    for _ in range(MAX_MESSAGES):
        message = ContactMessage(
            org_id="acme", request_id=request_id, author="requester", body_sealed=""
        )
        message.body_sealed = cipher.seal("x", aad_for("contact_messages", message.id, "body"))
        session.add(message)
    await session.commit()
    full = await client.post(
        f"{path}/messages", json={"body": "one too many"}, headers=tokens.employee
    )
    assert_problem(full, 409)


async def test_closed_request_takes_no_messages(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    path, robin = await assigned(client, tokens, session, settings)
    request_id = path.rsplit("/", 1)[1]
    await act(client, request_id, "accept", robin)
    await client.post(f"{path}/messages", json={"body": "thanks"}, headers=tokens.employee)
    await act(client, request_id, "complete", robin, DEBRIEF)
    for headers in (tokens.employee, robin):
        assert_problem(
            await client.post(f"{path}/messages", json={"body": "again"}, headers=headers), 409
        )
        assert len((await client.get(f"{path}/messages", headers=headers)).json()["items"]) == 1


async def test_thread_is_for_the_two_of_them_only(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    path, _ = await assigned(client, tokens, session, settings)
    await make_ally(session, settings, "sasha")
    for headers in (person(tokens, "sasha"), person(tokens, "emp-2"), tokens.other_org_employee):
        assert_problem(
            await client.post(f"{path}/messages", json={"body": "x"}, headers=headers), 404
        )
    for headers in (tokens.coordinator, tokens.analyst, tokens.integration):
        assert_problem(
            await client.post(f"{path}/messages", json={"body": "x"}, headers=headers), 403
        )
    assert_problem(await client.post(f"{path}/messages", json={"body": "x"}), 401)
    assert_problem(
        await client.get(f"{PATH}/{uuid.uuid4()}/messages", headers=tokens.employee), 404
    )


async def test_every_ally_read_is_in_the_requesters_access_log(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    path, robin = await assigned(client, tokens, session, settings)
    await client.post(f"{path}/messages", json={"body": "hello"}, headers=tokens.employee)
    await client.get(path, headers=robin)
    await client.get(f"{path}/messages", headers=robin)
    # The requester's own reads are not logged.
    await client.get(path, headers=tokens.employee)
    await client.get(f"{path}/messages", headers=tokens.employee)

    log = await client.get(f"{path}/access-log", headers=tokens.employee)
    assert log.status_code == 200
    items = log.json()["items"]
    assert [(e["accessor"], e["action"]) for e in items] == [
        ("Robin Ally", "read_messages"),
        ("Robin Ally", "read_request"),
    ]
    assert set(items[0]) == {"accessed_at", "accessor", "action"}
    page = (await client.get(f"{path}/access-log?limit=1", headers=tokens.employee)).json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = (
        await client.get(
            f"{path}/access-log?limit=1&cursor={page['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert rest["items"][0]["action"] == "read_request"

    # Only the requester reads the log.
    assert_problem(await client.get(f"{path}/access-log", headers=robin), 404)
    assert_problem(await client.get(f"{path}/access-log", headers=tokens.other_org_employee), 404)
    assert_problem(await client.get(f"{path}/access-log", headers=tokens.coordinator), 403)
    assert_problem(await client.get(f"{path}/access-log", headers=tokens.analyst), 403)
    assert_problem(await client.get(f"{path}/access-log"), 401)
    assert_problem(await client.get(f"{path}/access-log?limit=0", headers=tokens.employee), 422)
