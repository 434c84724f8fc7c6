"""SCIM provisioning, driven with the request sequences Okta and Entra ID send (docs/scim.md)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.scim.models import AllyAccount
from tests.allies.factories import active_ally, volunteer
from tests.helpers import ORG, TokenFactory
from tests.webhooks.factories import deliveries, subscribe

USERS = "/scim/v2/Users"
SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def scim(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": SCIM_JSON, "Accept": SCIM_JSON}


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type


async def find(client: httpx.AsyncClient, tokens: TokenFactory, user_name: str) -> dict[str, Any]:
    response = await client.get(
        USERS,
        params={"filter": f'userName eq "{user_name}"', "startIndex": 1, "count": 100},
        headers=scim(tokens.integration),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body: dict[str, Any] = response.json()
    return body


async def pending_request_for(session: AsyncSession, ally_id: str) -> uuid.UUID:
    pending = ContactRequest(
        org_id=ORG,
        requester_ref="r" * 64,
        ally_id=uuid.UUID(ally_id),
        topic="stress",
        urgency="normal",
    )
    session.add(pending)
    await session.execute(
        sa.update(Ally).where(Ally.id == uuid.UUID(ally_id)).values(open_requests=1)
    )
    await session.commit()
    return pending.id


async def retired_and_handed_back(
    session: AsyncSession, ally_id: str, request_id: uuid.UUID
) -> None:
    session.expire_all()
    ally = await session.get(Ally, uuid.UUID(ally_id))
    assert ally is not None
    assert ally.status == "retired"
    request = await session.get(ContactRequest, request_id)
    assert request is not None
    assert request.ally_id != uuid.UUID(ally_id) or request.status == "declined"


async def test_okta_lookup_then_deactivate_by_patch(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "alice@example.com")
    other = await active_ally(client, tokens, "bob@example.com")
    request_id = await pending_request_for(session, ally["id"])
    await subscribe(client, tokens.integration, events=["ally.unlisted"])

    found = await find(client, tokens, "alice@example.com")
    assert found["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert found["totalResults"] == 1
    [user] = found["Resources"]
    assert user["id"] == ally["id"]
    assert user["userName"] == "alice@example.com"
    assert user["active"] is True
    assert user["displayName"] == ally["display_name"]
    assert user["meta"]["resourceType"] == "User"

    # Okta deactivates with a PATCH whose value object carries active.
    response = await client.patch(
        f"{USERS}/{ally['id']}",
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]},
        headers=scim(tokens.integration),
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    await retired_and_handed_back(session, ally["id"], request_id)
    events = [json.loads(row.body)["data"]["ally_id"] for row in await deliveries(session)]
    assert events == [ally["id"]]  # one ally.unlisted, for the deprovisioned ally only
    assert other["id"] != ally["id"]

    # Okta repeats itself: nothing changes twice.
    again = await client.patch(
        f"{USERS}/{ally['id']}",
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]},
        headers=scim(tokens.integration),
    )
    assert again.status_code == 200
    assert len(await deliveries(session)) == 1


async def test_okta_put_with_active_false(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "carol@example.com")
    request_id = await pending_request_for(session, ally["id"])
    [user] = (await find(client, tokens, "carol@example.com"))["Resources"]
    # Okta's PUT carries its whole user; what allyapi does not keep is ignored.
    body = {
        "schemas": [USER],
        "id": user["id"],
        "userName": "carol@example.com",
        "name": {"givenName": "Carol", "familyName": "C"},
        "emails": [{"primary": True, "value": "carol@example.com", "type": "work"}],
        "displayName": "Someone else",
        "externalId": "00u1abcd",
        "active": False,
    }
    response = await client.put(
        f"{USERS}/{user['id']}", json=body, headers=scim(tokens.integration)
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert response.json()["externalId"] == "00u1abcd"
    assert response.json()["displayName"] == ally["display_name"]  # the ally's own
    await retired_and_handed_back(session, ally["id"], request_id)

    renamed = {**body, "userName": "mallory@example.com"}
    response = await client.put(
        f"{USERS}/{user['id']}", json=renamed, headers=scim(tokens.integration)
    )
    assert_scim_error(response, 400, "mutability")
    # A rehire: reactivated, the profile is back in the review queue, not listed.
    reactivate = {**body, "active": True}
    response = await client.put(
        f"{USERS}/{user['id']}", json=reactivate, headers=scim(tokens.integration)
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    profile = await client.get(f"/v1/allies/{ally['id']}", headers=tokens.coordinator)
    assert profile.json()["status"] == "applied"
    assert profile.json()["listed"] is False


async def test_entra_lookup_patch_string_false_and_delete(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "dan@contoso.test")
    request_id = await pending_request_for(session, ally["id"])
    [user] = (await find(client, tokens, "dan@contoso.test"))["Resources"]
    # Entra ID: capitalised op, the boolean as the string "False".
    response = await client.patch(
        f"{USERS}/{user['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
        },
        headers=scim(tokens.integration),
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    await retired_and_handed_back(session, ally["id"], request_id)

    deleted = await client.delete(f"{USERS}/{user['id']}", headers=scim(tokens.integration))
    assert deleted.status_code == 204
    gone = await client.get(f"{USERS}/{user['id']}", headers=scim(tokens.integration))
    assert_scim_error(gone, 404)
    again = await client.delete(f"{USERS}/{user['id']}", headers=scim(tokens.integration))
    assert_scim_error(again, 404)


async def test_entra_delete_of_an_active_user_retires_the_profile(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "erin@contoso.test")
    request_id = await pending_request_for(session, ally["id"])
    [user] = (await find(client, tokens, "erin@contoso.test"))["Resources"]
    deleted = await client.delete(f"{USERS}/{user['id']}", headers=scim(tokens.integration))
    assert deleted.status_code == 204
    await retired_and_handed_back(session, ally["id"], request_id)


async def test_post_links_an_existing_profile_and_never_creates_one(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await volunteer(client, tokens, "frank@example.com")
    body = {"schemas": [USER], "userName": "frank@example.com", "externalId": "ext-1"}
    created = await client.post(USERS, json=body, headers=scim(tokens.integration))
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{USERS}/{ally['id']}"
    assert created.json()["externalId"] == "ext-1"
    assert created.json()["active"] is True
    twice = await client.post(USERS, json=body, headers=scim(tokens.integration))
    assert_scim_error(twice, 409, "uniqueness")

    unknown = {"schemas": [USER], "userName": "nobody@example.com"}
    response = await client.post(USERS, json=unknown, headers=scim(tokens.integration))
    assert_scim_error(response, 404)
    accounts = (await session.execute(sa.select(AllyAccount))).scalars().all()
    assert [account.id for account in accounts] == [uuid.UUID(ally["id"])]


async def test_requesters_and_unknown_people_are_not_users(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await active_ally(client, tokens, "ally-g")
    made = await client.post(
        "/v1/contact-requests",
        json={"topic": "stress", "message": "hello"},
        headers=tokens.headers("requester-1", "employee"),
    )
    assert made.status_code == 201, made.text
    for name in ("requester-1", "nobody"):
        found = await find(client, tokens, name)
        assert found["totalResults"] == 0
        assert found["Resources"] == []
    assert (await session.execute(sa.select(AllyAccount))).scalars().all() == []
    listing = await client.get(USERS, headers=scim(tokens.integration))
    assert listing.json()["totalResults"] == 0  # a filter for the ally was never made


async def test_list_paging_and_attributes(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    for sub in ("p1", "p2", "p3"):
        await active_ally(client, tokens, sub)
        await find(client, tokens, sub)
    page = await client.get(
        USERS, params={"startIndex": 2, "count": 1}, headers=scim(tokens.integration)
    )
    assert page.status_code == 200
    assert page.json()["totalResults"] == 3
    assert page.json()["startIndex"] == 2
    assert page.json()["itemsPerPage"] == 1
    only = await client.get(
        USERS,
        params={"filter": 'userName eq "p1"', "attributes": "userName"},
        headers=scim(tokens.integration),
    )
    [user] = only.json()["Resources"]
    assert set(user) == {"schemas", "id", "userName"}
    without = await client.get(
        f"{USERS}/{user['id']}",
        params={"excludedAttributes": "meta,displayName"},
        headers=scim(tokens.integration),
    )
    assert "meta" not in without.json()
    assert "displayName" not in without.json()


async def test_scim_errors(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ally = await active_ally(client, tokens, "h1")
    response = await client.get(
        USERS, params={"filter": 'userName co "h"'}, headers=scim(tokens.integration)
    )
    assert_scim_error(response, 400, "invalidFilter")
    response = await client.get(USERS, params={"filter": "(("}, headers=scim(tokens.integration))
    assert_scim_error(response, 400, "invalidFilter")
    response = await client.get(
        USERS, params={"sortBy": "userName"}, headers=scim(tokens.integration)
    )
    assert_scim_error(response, 400, "invalidValue")  # an unknown parameter
    [user] = (await find(client, tokens, "h1"))["Resources"]
    path = f"{USERS}/{user['id']}"
    bad_ops: list[Any] = [
        {"Operations": []},
        {"Operations": [{"op": "move", "path": "active"}]},
        {"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]},
        {"Operations": [{"op": "remove", "path": "active"}]},
        {"Operations": [{"op": "replace", "path": "userName", "value": "x"}]},
        {"schemas": [PATCH_OP]},
        ["not", "an", "object"],
    ]
    for body in bad_ops:
        response = await client.patch(path, json=body, headers=scim(tokens.integration))
        assert response.status_code == 400, (body, response.text)
        assert response.json()["schemas"] == [ERROR]
    response = await client.patch(path, content=b"{not json", headers=scim(tokens.integration))
    assert response.status_code == 400
    response = await client.get(USERS, headers={"Accept": SCIM_JSON})
    assert_scim_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    for headers in (tokens.coordinator, tokens.employee, tokens.analyst):
        response = await client.get(path, headers=scim(headers))
        assert_scim_error(response, 403)
    other_org = tokens.headers("hris-9", "integration", org="globex")
    assert_scim_error(await client.get(path, headers=scim(other_org)), 404)
    assert_scim_error(await client.delete(path, headers=scim(other_org)), 404)
    assert (await client.get(path, headers=scim(tokens.integration))).json()["active"] is True
    assert ally["id"] == user["id"]


async def test_discovery_documents(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    config = await client.get("/scim/v2/ServiceProviderConfig", headers=scim(tokens.integration))
    assert config.status_code == 200
    assert config.headers["content-type"].startswith(SCIM_JSON)
    assert config.json()["patch"]["supported"] is True
    assert config.json()["bulk"]["supported"] is False
    assert config.json()["sort"]["supported"] is False
    assert config.json()["filter"] == {"supported": True, "maxResults": 100}
    schemas = await client.get("/scim/v2/Schemas", headers=scim(tokens.integration))
    [schema] = schemas.json()["Resources"]
    assert schema["id"] == USER
    assert {a["name"] for a in schema["attributes"]} == {"userName", "displayName", "active"}
    one = await client.get(f"/scim/v2/Schemas/{USER}", headers=scim(tokens.integration))
    assert one.json()["id"] == USER
    types = await client.get("/scim/v2/ResourceTypes", headers=scim(tokens.integration))
    assert [t["name"] for t in types.json()["Resources"]] == ["User"]
    user_type = await client.get("/scim/v2/ResourceTypes/User", headers=scim(tokens.integration))
    assert user_type.json()["endpoint"] == "/Users"
    assert_scim_error(
        await client.get("/scim/v2/ResourceTypes/Group", headers=scim(tokens.integration)), 404
    )


async def test_deprovisioning_and_reactivation_are_in_the_audit_trail(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    ally = await active_ally(client, tokens, "carol@example.com")
    await find(client, tokens, "carol@example.com")  # links the profile, changes nothing
    for active in (False, True):
        response = await client.patch(
            f"{USERS}/{ally['id']}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": active}],
            },
            headers=scim(tokens.integration),
        )
        assert response.status_code == 200, response.text
    response = await client.get("/v1/audit-events", headers=tokens.coordinator)
    assert response.status_code == 200, response.text
    events = [
        (event["action"], event["target_id"], event["changed"], event["actor"]["kind"])
        for event in reversed(response.json()["items"])
        if event["action"].startswith("ally.scim")
    ]
    assert events == [
        ("ally.scim_retire", ally["id"], ["status"], "integration"),
        ("ally.scim_reapply", ally["id"], ["status"], "integration"),
    ]
