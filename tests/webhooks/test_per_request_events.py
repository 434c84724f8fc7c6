"""Per-request events reach integration clients only, and their log only the subscription's owner.

A coordinator subscribed to ``contact_request.assigned`` received each request's creation time
and ally (a re-match revealed a decline), and the delivery log kept them even when the URL never
answered: exactly what the reports suppress. Now a programme-staff token asking for one is a
403, a subscription from before owners were recorded lost those events in the upgrade (and,
should its row still list one, the outbox sends it none), and the deliveries of per-request
events are listed and retried by the owning integration client only.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.migrations import upgrade
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import make_engine
from allyapi.core.settings import Settings
from allyapi.webhooks.models import DeliveryStatus, WebhookSubscription
from allyapi.webhooks.outbox import enqueue
from tests.contact_requests.factories import create, make_ally
from tests.helpers import ORG, TokenFactory, assert_problem
from tests.migrations.scratch import scratch_database_in_thread
from tests.webhooks.factories import deliveries, subscribe

HOOK = "https://hooks.example.test/relay"
PER_REQUEST = ["contact_request.assigned", "contact_request.expired"]


def log_types(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(item["event_type"] for item in response.json()["items"])


@pytest.mark.parametrize("event", PER_REQUEST)
async def test_programme_staff_cannot_subscribe_to_per_request_events(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, event: str
) -> None:
    staff = {
        "coordinator": tokens.coordinator,
        "coordinator and integration": tokens.headers("c-2", "coordinator", "integration"),
        "analyst and integration": tokens.headers("a-2", "analyst", "integration"),
    }
    for label, headers in staff.items():
        for events in ([event], ["ally.listed", event]):
            body = {"url": HOOK, "events": events}
            keyed = {**headers, "Idempotency-Key": f"k-{label}-{len(events)}"}
            problem = assert_problem(
                await client.post("/v1/webhooks", json=body, headers=keyed), 403
            )
            assert event in problem["detail"], label
    assert (await session.scalars(sa.select(WebhookSubscription))).all() == []
    created = await subscribe(client, tokens.integration, url=HOOK, events=[event])
    assert created["events"] == [event]


async def test_only_owned_subscriptions_receive_per_request_events(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    """A row that lists a per-request event without an owner (one written before owners were
    recorded, or by hand) gets no delivery of it: the outbox checks, not only the route."""
    legacy = WebhookSubscription(
        org_id=ORG, url=HOOK, events=["ally.listed", *PER_REQUEST], secret_sealed="x"
    )
    session.add(legacy)
    await session.commit()
    owned = await subscribe(client, tokens.integration, url=HOOK, events=PER_REQUEST)
    ally = await make_ally(session, settings, "robin")
    created = await create(client, tokens.employee, ally_id=str(ally.id))

    rows = await deliveries(session)
    assert [(str(row.subscription_id), row.event_type) for row in rows] == [
        (owned["id"], "contact_request.assigned")
    ]
    assert json.loads(rows[0].body)["data"]["contact_request_id"] == created["id"]
    await enqueue(session, ORG, "ally.listed", {"ally_id": ally.id})
    await session.commit()
    assert {row.subscription_id for row in await deliveries(session)} == {
        legacy.id,
        rows[0].subscription_id,
    }


async def test_the_per_request_log_is_the_owners_alone(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    owner = tokens.integration
    other_client = tokens.headers("lms-2", "integration")
    hook = await subscribe(client, owner, url=HOOK, events=["ally.listed", *PER_REQUEST])
    ally = await make_ally(session, settings, "robin")
    await create(client, tokens.employee, ally_id=str(ally.id))
    await enqueue(session, ORG, "ally.listed", {"ally_id": ally.id})
    await session.commit()
    base = f"/v1/webhooks/{hook['id']}/deliveries"

    assert log_types(await client.get(base, headers=owner)) == [
        "ally.listed",
        "contact_request.assigned",
    ]
    for reader in (tokens.coordinator, other_client):
        assert log_types(await client.get(base, headers=reader)) == ["ally.listed"]
        listed = await client.get("/v1/webhooks", headers=reader)
        assert [item["id"] for item in listed.json()["items"]] == [hook["id"]]

    per_request = next(row for row in await deliveries(session) if row.event_type in PER_REQUEST)
    per_request.status, per_request.next_attempt_at = DeliveryStatus.failed, None
    await session.commit()
    retry = f"{base}/{per_request.id}/retry"
    for reader in (tokens.coordinator, other_client):
        assert_problem(await client.post(retry, headers=reader), 404)
    assert (await client.post(retry, headers=owner)).status_code == 202


async def test_the_upgrade_takes_per_request_events_from_unowned_subscriptions(
    tmp_path: Path,
) -> None:
    """Before owners were recorded, nobody can tell a coordinator's subscription from an
    integration's: the upgrade strips per-request events from all of them and drops their
    queued and logged deliveries; other events and deliveries stay."""
    async with scratch_database_in_thread(tmp_path) as url:
        await asyncio.to_thread(upgrade, url, "0007")
        hook_id = uuid.uuid4()
        await _insert_legacy_subscription(url, hook_id)
        await asyncio.to_thread(upgrade, url)
        events, kinds = await _read_back(url, hook_id)
    assert events == ["ally.listed"]
    assert kinds == ["ally.listed"]


_SUBSCRIPTIONS = sa.table(
    "webhook_subscriptions",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("url", sa.String()),
    sa.column("events", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    sa.column("secret_sealed", sa.Text()),
)
_DELIVERIES = sa.table(
    "webhook_deliveries",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("subscription_id", sa.Uuid()),
    sa.column("event_id", sa.Uuid()),
    sa.column("event_type", sa.String()),
    sa.column("body", sa.Text()),
    sa.column("status", sa.String()),
    sa.column("attempts", sa.Integer()),
)


async def _insert_legacy_subscription(url: str, hook_id: uuid.UUID) -> None:
    engine = make_engine(url)
    now = utcnow()
    stamps = {"org_id": ORG, "created_at": now, "updated_at": now}
    try:
        async with engine.begin() as connection:
            await connection.execute(
                _SUBSCRIPTIONS.insert().values(
                    id=hook_id,
                    url=HOOK,
                    events=["ally.listed", *PER_REQUEST],
                    secret_sealed="x",
                    **stamps,
                )
            )
            for event_type, status in (
                ("contact_request.assigned", "pending"),
                ("contact_request.expired", "delivered"),
                ("ally.listed", "delivered"),
            ):
                await connection.execute(
                    _DELIVERIES.insert().values(
                        id=uuid.uuid4(),
                        subscription_id=hook_id,
                        event_id=uuid.uuid4(),
                        event_type=event_type,
                        body="{}",
                        status=status,
                        attempts=0,
                        **stamps,
                    )
                )
    finally:
        await engine.dispose()


async def _read_back(url: str, hook_id: uuid.UUID) -> tuple[list[str], list[str]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            events = await connection.scalar(
                sa.select(_SUBSCRIPTIONS.c.events).where(_SUBSCRIPTIONS.c.id == hook_id)
            )
            kinds = await connection.scalars(
                sa.select(_DELIVERIES.c.event_type).order_by(_DELIVERIES.c.event_type)
            )
            return list(events), list(kinds)
    finally:
        await engine.dispose()
