from __future__ import annotations

import uuid

import httpx

from tests.helpers import TokenFactory, assert_problem

SAMARITANS = {
    "name": "Samaritans",
    "category": "crisis",
    "country": "GB",
    "url": "https://www.samaritans.org",
    "phone": "116 123",
    "hours": "24/7",
}


async def create(client: httpx.AsyncClient, tokens: TokenFactory, **fields: object) -> dict:
    response = await client.post(
        "/v1/resources", json={**SAMARITANS, **fields}, headers=tokens.coordinator
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_coordinator_creates_and_employee_reads(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    created = await create(client, tokens)
    assert created["name"] == "Samaritans"
    response = await client.get(f"/v1/resources/{created['id']}", headers=tokens.employee)
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"]


async def test_filters_by_country_including_global_and_category(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await create(client, tokens)
    await create(client, tokens, name="US line", country="US")
    await create(client, tokens, name="Helplines", country=None)
    await create(client, tokens, name="EAP", category="eap", country=None)

    gb = await client.get("/v1/resources?country=GB", headers=tokens.employee)
    assert [item["name"] for item in gb.json()["items"]] == ["EAP", "Helplines", "Samaritans"]
    only_gb = await client.get(
        "/v1/resources?country=GB&include_global=false", headers=tokens.employee
    )
    assert [item["name"] for item in only_gb.json()["items"]] == ["Samaritans"]
    eap = await client.get("/v1/resources?category=eap", headers=tokens.employee)
    assert [item["name"] for item in eap.json()["items"]] == ["EAP"]


async def test_keyset_pagination_is_stable(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    for index in range(5):
        await create(client, tokens, name=f"Resource {index}")
    first = (await client.get("/v1/resources?limit=2", headers=tokens.employee)).json()
    assert [item["name"] for item in first["items"]] == ["Resource 0", "Resource 1"]
    await create(client, tokens, name="Resource 00")  # sorts before the cursor: not re-served
    second = (
        await client.get(
            f"/v1/resources?limit=2&cursor={first['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert [item["name"] for item in second["items"]] == ["Resource 2", "Resource 3"]
    third = (
        await client.get(
            f"/v1/resources?limit=2&cursor={second['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert [item["name"] for item in third["items"]] == ["Resource 4"]
    assert third["next_cursor"] is None


async def test_bad_cursor_is_422(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    assert_problem(await client.get("/v1/resources?cursor=bm9wZQ", headers=tokens.employee), 422)


async def test_patch_honours_if_match(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await create(client, tokens)
    read = await client.get(f"/v1/resources/{created['id']}", headers=tokens.coordinator)
    etag = read.headers["etag"]
    changed = await client.patch(
        f"/v1/resources/{created['id']}",
        json={"hours": "always"},
        headers={**tokens.coordinator, "If-Match": etag},
    )
    assert changed.status_code == 200
    assert changed.json()["hours"] == "always"
    assert changed.headers["etag"] != etag
    stale = await client.patch(
        f"/v1/resources/{created['id']}",
        json={"hours": "never"},
        headers={**tokens.coordinator, "If-Match": etag},
    )
    assert_problem(stale, 412)


async def test_delete(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await create(client, tokens)
    assert (
        await client.delete(f"/v1/resources/{created['id']}", headers=tokens.coordinator)
    ).status_code == 204
    assert_problem(await client.get(f"/v1/resources/{created['id']}", headers=tokens.employee), 404)


async def test_unknown_fields_rejected_without_echo(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.post(
        "/v1/resources",
        json={**SAMARITANS, "status": "secret-value-123"},
        headers=tokens.coordinator,
    )
    body = assert_problem(response, 422)
    assert "secret-value-123" not in response.text
    assert body["errors"][0]["loc"] == ["body", "status"]


async def test_auth_cases(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await create(client, tokens)
    path = f"/v1/resources/{created['id']}"
    assert_problem(await client.get("/v1/resources"), 401)
    assert_problem(await client.get(path), 401)
    assert_problem(
        await client.post("/v1/resources", json=SAMARITANS, headers=tokens.employee), 403
    )
    assert_problem(await client.patch(path, json={"hours": "x"}, headers=tokens.employee), 403)
    assert_problem(await client.delete(path, headers=tokens.integration), 403)
    assert_problem(await client.get("/v1/resources", headers=tokens.analyst), 403)
    # Another organisation: the id does not exist for them.
    assert_problem(await client.get(path, headers=tokens.other_org_employee), 404)
    assert_problem(
        await client.patch(path, json={"hours": "x"}, headers=tokens.other_org_coordinator), 404
    )
    assert_problem(await client.delete(path, headers=tokens.other_org_coordinator), 404)
    listed = await client.get("/v1/resources", headers=tokens.other_org_employee)
    assert listed.json()["items"] == []
    assert_problem(await client.get(f"/v1/resources/{uuid.uuid4()}", headers=tokens.employee), 404)
