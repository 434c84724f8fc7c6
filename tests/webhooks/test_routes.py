"""/v1/webhooks: subscribe, list, delete, delivery log, manual retry; roles, orgs, input."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.core.privacy.crypto import Cipher
from allyapi.core.settings import Settings
from allyapi.webhooks.models import DeliveryStatus
from allyapi.webhooks.outbox import enqueue
from allyapi.webhooks.service import secret_aad
from tests.helpers import ORG, TokenFactory, assert_problem
from tests.webhooks.factories import PROGRAMME_EVENTS, deliveries, subscribe


async def test_subscribe_shows_the_secret_once_and_seals_it(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    created = await subscribe(client, tokens.integration, events=["ally.listed", "ally.listed"])
    assert set(created) == {"id", "url", "events", "secret", "created_at"}
    assert created["events"] == ["ally.listed"]
    assert created["secret"].startswith("whsec_")
    listed = await client.get("/v1/webhooks", headers=tokens.coordinator)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert "secret" not in item
    assert item["id"] == created["id"]
    from allyapi.webhooks.models import WebhookSubscription

    row = await session.get(WebhookSubscription, uuid.UUID(created["id"]))
    assert row is not None
    assert created["secret"] not in row.secret_sealed
    opened = Cipher(settings.data_key_ring).open(row.secret_sealed, secret_aad(row.id))
    assert opened == created["secret"]


async def test_list_pages_with_a_cursor(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ids = [
        (await subscribe(client, tokens.coordinator, events=PROGRAMME_EVENTS))["id"]
        for _ in range(3)
    ]
    first = (await client.get("/v1/webhooks?limit=2", headers=tokens.coordinator)).json()
    second = (
        await client.get(
            f"/v1/webhooks?limit=2&cursor={first['next_cursor']}", headers=tokens.coordinator
        )
    ).json()
    assert [item["id"] for item in first["items"] + second["items"]] == ids
    assert second["next_cursor"] is None


async def test_delete_removes_the_subscription_and_its_log(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    created = await subscribe(client, tokens.integration)
    await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()
    response = await client.delete(f"/v1/webhooks/{created['id']}", headers=tokens.integration)
    assert response.status_code == 204
    assert (await client.get("/v1/webhooks", headers=tokens.integration)).json()["items"] == []
    assert await deliveries(session) == []
    again = await client.delete(f"/v1/webhooks/{created['id']}", headers=tokens.integration)
    assert_problem(again, 404)


async def test_delivery_log_and_manual_retry(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    created = await subscribe(client, tokens.integration)
    for _ in range(3):
        await enqueue(session, ORG, "ally.unlisted", {"ally_id": uuid.uuid4()})
    await session.commit()
    base = f"/v1/webhooks/{created['id']}/deliveries"
    page = (await client.get(f"{base}?limit=2", headers=tokens.integration)).json()
    rest = (
        await client.get(f"{base}?limit=2&cursor={page['next_cursor']}", headers=tokens.integration)
    ).json()
    log = page["items"] + rest["items"]
    assert len(log) == 3
    assert len({item["id"] for item in log}) == 3
    assert all(item["status"] == "pending" and item["attempts"] == 0 for item in log)

    target = log[0]["id"]
    queued = await client.post(f"{base}/{target}/retry", headers=tokens.integration)
    assert_problem(queued, 409)
    [row, *_] = [d for d in await deliveries(session) if str(d.id) == target]
    row.status, row.attempts, row.next_attempt_at = DeliveryStatus.failed, 8, None
    await session.commit()
    retried = await client.post(f"{base}/{target}/retry", headers=tokens.coordinator)
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "pending"
    assert retried.json()["attempts"] == 0
    assert retried.json()["next_attempt_at"] is not None
    missing = await client.post(f"{base}/{uuid.uuid4()}/retry", headers=tokens.integration)
    assert_problem(missing, 404)


ROUTES = [
    ("POST", "/v1/webhooks", {"url": "https://h.example.test/x", "events": ["ally.listed"]}),
    ("GET", "/v1/webhooks", None),
    ("DELETE", "/v1/webhooks/{id}", None),
    ("GET", "/v1/webhooks/{id}/deliveries", None),
    ("POST", "/v1/webhooks/{id}/deliveries/{delivery}/retry", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_unauthenticated_and_wrong_roles(
    client: httpx.AsyncClient, tokens: TokenFactory, method: str, path: str, body: object
) -> None:
    url = path.format(id=uuid.uuid4(), delivery=uuid.uuid4())
    assert_problem(await client.request(method, url, json=body), 401)
    for headers in (tokens.employee, tokens.analyst):
        assert_problem(await client.request(method, url, json=body, headers=headers), 403)


async def test_other_organisations_see_nothing(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    created = await subscribe(client, tokens.coordinator, events=PROGRAMME_EVENTS)
    await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()
    [delivery] = await deliveries(session)
    other = tokens.other_org_coordinator
    assert (await client.get("/v1/webhooks", headers=other)).json()["items"] == []
    base = f"/v1/webhooks/{created['id']}"
    assert_problem(await client.get(f"{base}/deliveries", headers=other), 404)
    assert_problem(await client.post(f"{base}/deliveries/{delivery.id}/retry", headers=other), 404)
    assert_problem(await client.delete(base, headers=other), 404)
    assert (await client.get(f"{base}/deliveries", headers=tokens.coordinator)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://h.example.test/x", "events": []},
        {"url": "https://h.example.test/x", "events": ["ally.deleted"]},
        {"url": "https://h.example.test/x"},
        {"url": "ftp://h.example.test/x", "events": ["ally.listed"]},
        {"url": "https://user:pw@h.example.test/x", "events": ["ally.listed"]},
        {"url": "https://h.example.test/" + "x" * 500, "events": ["ally.listed"]},
        {"url": "https://h.example.test/x", "events": ["ally.listed"], "secret": "mine"},
    ],
)
async def test_invalid_bodies(
    client: httpx.AsyncClient, tokens: TokenFactory, body: dict[str, object]
) -> None:
    assert_problem(await client.post("/v1/webhooks", json=body, headers=tokens.coordinator), 422)


async def test_invalid_cursor_and_ids(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await subscribe(client, tokens.coordinator, events=PROGRAMME_EVENTS)
    bad = await client.get("/v1/webhooks?cursor=bm9wZQ", headers=tokens.coordinator)
    assert_problem(bad, 422)
    log = await client.get(
        f"/v1/webhooks/{created['id']}/deliveries?cursor=WyJ4IiwieSJd", headers=tokens.coordinator
    )
    assert_problem(log, 422)
    assert_problem(await client.delete("/v1/webhooks/nope", headers=tokens.coordinator), 422)


@pytest.fixture
async def strict_client(settings: Settings, database: Database) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update={"webhook_allow_private": False}), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # plain http
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://224.0.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://no-such-host.invalid/hook",
    ],
)
async def test_ssrf_guard_refuses_private_targets_in_production(
    strict_client: httpx.AsyncClient, tokens: TokenFactory, url: str
) -> None:
    body = {"url": url, "events": ["ally.listed"]}
    response = await strict_client.post("/v1/webhooks", json=body, headers=tokens.coordinator)
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", "url"]


async def test_ssrf_guard_accepts_a_public_https_address(
    strict_client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    body = {"url": "https://93.184.215.14/hook", "events": ["ally.listed"]}
    response = await strict_client.post("/v1/webhooks", json=body, headers=tokens.coordinator)
    assert response.status_code == 201, response.text


async def test_idempotency_key_replays_the_subscription_and_its_secret(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    body = {"url": "https://h.example.test/x", "events": ["ally.listed"]}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/webhooks", json=body, headers={**tokens.integration, **key})
    again = await client.post("/v1/webhooks", json=body, headers={**tokens.integration, **key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    listed = await client.get("/v1/webhooks", headers=tokens.integration)
    assert len(listed.json()["items"]) == 1
    other_body = {**body, "events": ["ally.unlisted"]}
    clash = await client.post(
        "/v1/webhooks", json=other_body, headers={**tokens.integration, **key}
    )
    assert_problem(clash, 422)
    # Keys belong to their caller: another caller's same key creates its own subscription.
    mine = await client.post("/v1/webhooks", json=body, headers={**tokens.coordinator, **key})
    assert mine.status_code == 201
    assert mine.json()["id"] != first.json()["id"]
    await client.delete(f"/v1/webhooks/{first.json()['id']}", headers=tokens.integration)
    gone = await client.post("/v1/webhooks", json=body, headers={**tokens.integration, **key})
    assert_problem(gone, 404)
