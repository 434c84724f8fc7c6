"""Who sees which fields of a request (docs/privacy.md, P2, P3, P8), and the lists of each
audience."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.http.pagination import PageRequest, binding_of
from allyapi.core.settings import Settings
from tests.contact_requests.factories import ALIAS, CONTACT, MESSAGE, act, create, make_ally, person
from tests.helpers import ORG, TokenFactory, assert_problem

PATH = "/v1/contact-requests"
ALLY_SUMMARY = {
    "id",
    "status",
    "topic",
    "urgency",
    "language",
    "preferred_channel",
    "anonymous",
    "created_at",
    "expires_at",
    "accepted_at",
    "closed_at",
}
ALLY_VIEW = ALLY_SUMMARY | {"message", "alias", "contact_detail"}
REQUESTER_VIEW = ALLY_VIEW | {"ally_id", "ally", "resources"}


async def setup(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    **fields: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    ally = await make_ally(session, settings, "robin", name="Robin")
    await make_ally(session, settings, "other-ally", name="Zed")
    created = await create(
        client,
        tokens.employee,
        ally_id=str(ally.id),
        language="en",
        preferred_channel="phone",
        **fields,
    )
    return created, person(tokens, "robin")


async def test_requester_sees_everything_they_typed(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    created, _ = await setup(client, tokens, session, settings, contact_detail=CONTACT, alias=ALIAS)
    response = await client.get(f"{PATH}/{created['id']}", headers=tokens.employee)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == REQUESTER_VIEW
    assert (body["message"], body["contact_detail"], body["alias"]) == (MESSAGE, CONTACT, ALIAS)
    assert body["ally"]["display_name"] == "Robin"
    assert "requester_ref" not in response.text


async def test_assigned_ally_sees_contact_only_after_accepting(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    created, robin = await setup(
        client, tokens, session, settings, contact_detail=CONTACT, alias=ALIAS
    )
    before = (await client.get(f"{PATH}/{created['id']}", headers=robin)).json()
    assert set(before) == ALLY_VIEW
    assert before["message"] == MESSAGE
    assert (before["alias"], before["contact_detail"]) == (None, None)
    assert (before["topic"], before["language"], before["preferred_channel"]) == (
        "stress",
        "en",
        "phone",
    )
    assert (await act(client, created["id"], "accept", robin)).status_code == 200
    after = (await client.get(f"{PATH}/{created['id']}", headers=robin)).json()
    assert (after["alias"], after["contact_detail"]) == (ALIAS, CONTACT)
    assert after["accepted_at"] is not None


async def test_anonymous_request_never_shares_alias_or_contact(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    created, robin = await setup(client, tokens, session, settings, anonymous=True, alias=ALIAS)
    await act(client, created["id"], "accept", robin)
    body = (await client.get(f"{PATH}/{created['id']}", headers=robin)).json()
    assert body["anonymous"] is True
    assert (body["alias"], body["contact_detail"]) == (None, None)
    assert body["message"] == MESSAGE
    assert ALIAS not in str(body)


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("other_ally", 404),
        ("other_employee", 404),
        ("other_org", 404),
        ("coordinator", 403),
        ("analyst", 403),
        ("integration", 403),
        ("nobody", 401),
    ],
)
async def test_nobody_else_reads_a_request(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    who: str,
    status: int,
) -> None:
    created, _ = await setup(client, tokens, session, settings, contact_detail=CONTACT)
    headers = {
        "other_ally": person(tokens, "other-ally"),
        "other_employee": person(tokens, "emp-2"),
        "other_org": tokens.other_org_employee,
        "coordinator": tokens.coordinator,
        "analyst": tokens.analyst,
        "integration": tokens.integration,
        "nobody": {},
    }[who]
    request_id = created["id"]
    for path in (f"{PATH}/{request_id}", f"{PATH}/{request_id}/messages"):
        response = await client.get(path, headers=headers)
        assert_problem(response, status)
        assert MESSAGE not in response.text
    # The same sub in another org is another person (P8).
    same_sub_elsewhere = tokens.headers("emp-1", "employee", org="globex")
    assert_problem(await client.get(f"{PATH}/{request_id}", headers=same_sub_elsewhere), 404)
    assert_problem(await client.get(f"{PATH}/{uuid.uuid4()}", headers=tokens.employee), 404)


async def test_lists_of_each_audience(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    created, robin = await setup(client, tokens, session, settings, contact_detail=CONTACT)
    second = await create(client, tokens.employee, ally_id=created["ally_id"], urgency="low")
    await act(client, second["id"], "accept", robin)

    mine = await client.get("/v1/me/contact-requests", headers=tokens.employee)
    assert mine.status_code == 200
    assert [item["id"] for item in mine.json()["items"]] == [second["id"], created["id"]]
    assert mine.json()["items"][0]["ally"]["display_name"] == "Robin"
    assert MESSAGE not in mine.text
    assert CONTACT not in mine.text

    assigned = await client.get(PATH, headers=robin)
    assert assigned.status_code == 200
    items = assigned.json()["items"]
    assert [item["id"] for item in items] == [second["id"], created["id"]]
    assert set(items[0]) == ALLY_SUMMARY
    assert MESSAGE not in assigned.text
    assert CONTACT not in assigned.text
    accepted = await client.get(f"{PATH}?status=accepted", headers=robin)
    assert [item["id"] for item in accepted.json()["items"]] == [second["id"]]
    # Listing is not reading protected content: nothing logged.
    log = await client.get(f"{PATH}/{second['id']}/access-log", headers=tokens.employee)
    assert log.json()["items"] == []

    assert (await client.get(PATH, headers=person(tokens, "other-ally"))).json()["items"] == []
    assert (await client.get("/v1/me/contact-requests", headers=robin)).json()["items"] == []
    assert_problem(await client.get(PATH, headers=person(tokens, "not-an-ally")), 403)
    for headers in (tokens.coordinator, tokens.analyst, tokens.integration):
        assert_problem(await client.get(PATH, headers=headers), 403)
        assert_problem(await client.get("/v1/me/contact-requests", headers=headers), 403)
    assert_problem(await client.get(PATH), 401)
    assert_problem(await client.get("/v1/me/contact-requests"), 401)
    assert (await client.get("/v1/me/contact-requests", headers=tokens.other_org_employee)).json()[
        "items"
    ] == []
    assert_problem(await client.get(f"{PATH}?status=bogus", headers=robin), 422)
    assert_problem(await client.get(f"{PATH}?cursor=bm9wZQ", headers=robin), 422)
    # Signed for this very list, but an instant without its offset: never one of ours.
    position = PageRequest(20, None, settings.cursor_key, binding_of(ORG, PATH, []))
    naive = position.cursor_at("2026-01-01T00:00:00", uuid.uuid4())
    assert_problem(await client.get(f"{PATH}?cursor={naive}", headers=robin), 422)


async def test_keyset_pagination_of_my_requests(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await make_ally(session, settings, "robin", capacity=10)
    ids = [(await create(client, tokens.employee))["id"] for _ in range(3)]
    first = (await client.get("/v1/me/contact-requests?limit=2", headers=tokens.employee)).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    cursor = first["next_cursor"]
    second = (
        await client.get(
            f"/v1/me/contact-requests?limit=2&cursor={cursor}", headers=tokens.employee
        )
    ).json()
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None


@pytest.mark.parametrize("oversight", ["coordinator", "analyst", "integration"])
async def test_an_oversight_role_is_refused_even_with_employee(
    client: httpx.AsyncClient, tokens: TokenFactory, oversight: str
) -> None:
    """README, "Who may read": any token carrying an oversight role gets 403 on every
    contact-request route, even when it also carries ``employee``. (Feedback on a request is
    the feedback domain's: 404 for anyone but the requester, as the authorization matrix says.)"""
    # The app's route table and a valid body per operation, so the role decides the answer.
    from tests.security.test_authz_matrix import BODIES, operations

    headers = tokens.headers("both-1", "employee", oversight)
    routes = [
        (method, path)
        for method, path in operations()
        if path.startswith(("/v1/contact-requests", "/v1/me/contact-requests"))
        and not path.endswith("/feedback")
    ]
    assert len(routes) >= 10
    for method, path in routes:
        url = path.replace("{request_id}", str(uuid.uuid4()))
        body = BODIES.get((method, path))
        response = await client.request(method, url, headers=headers, json=body)
        assert response.status_code == 403, (method, path, response.text)
