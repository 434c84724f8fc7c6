"""The deliverer against a real loopback receiver: signatures, retries, backoff, failure,
manual retry, redirects, and two deliverers racing over the same outbox."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.webhooks.deliverer import Deliverer, new_client
from allyapi.webhooks.models import DeliveryStatus
from allyapi.webhooks.outbox import enqueue
from tests.helpers import ORG, TokenFactory
from tests.webhooks.factories import deliveries, subscribe
from tests.webhooks.receiver import Receiver, running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client


def deliverer(
    database: Database, settings: Settings, http: httpx.AsyncClient, **options: object
) -> Deliverer:
    return Deliverer(database, settings, http, **options)  # type: ignore[arg-type]


async def test_a_delivery_is_signed_and_recorded(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    async with running(Receiver()) as receiver:
        hook = await subscribe(client, tokens.integration, url=receiver.url)
        ally_id = uuid.uuid4()
        event_id = await enqueue(session, ORG, "ally.listed", {"ally_id": ally_id})
        await session.commit()
        assert await deliverer(database, settings, http).run_once() == 1
    [got] = receiver.received
    assert got.path == "/hook"
    assert got.signed_by(hook["secret"])
    assert not got.signed_by("whsec_" + "A" * 44)
    assert got.headers["webhook-id"] == str(event_id)
    assert got.headers["content-type"] == "application/json"
    assert set(got.payload) == {"id", "type", "created_at", "org", "data"}
    assert got.payload["id"] == str(event_id)
    assert got.payload["type"] == "ally.listed"
    assert got.payload["org"] == ORG
    assert got.payload["data"] == {"ally_id": str(ally_id)}
    [row] = await deliveries(session)
    assert row.status == DeliveryStatus.delivered
    assert (row.attempts, row.last_status_code, row.last_error) == (1, 200, None)
    assert row.delivered_at is not None
    assert row.next_attempt_at is None


async def test_failures_back_off_exponentially_then_succeed(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    async with running(Receiver(statuses=[500, 503])) as receiver:
        await subscribe(client, tokens.integration, url=receiver.url)
        await enqueue(session, ORG, "ally.unlisted", {"ally_id": uuid.uuid4()})
        await session.commit()
        worker = deliverer(database, settings, http, base_delay_seconds=10)
        t0 = utcnow()
        assert await worker.run_once(t0) == 1
        [row] = await deliveries(session)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.last_error == "HTTP 500"
        assert row.next_attempt_at is not None
        first_delay = (row.next_attempt_at - t0).total_seconds()
        assert 8 <= first_delay <= 12  # 10 s ± 20 %
        assert await worker.run_once(t0 + timedelta(seconds=5)) == 0  # not due yet
        t1 = t0 + timedelta(seconds=13)
        assert await worker.run_once(t1) == 1
        [row] = await deliveries(session)
        assert row.next_attempt_at is not None
        second_delay = (row.next_attempt_at - t1).total_seconds()
        assert 16 <= second_delay <= 24  # 20 s ± 20 %: doubled
        assert await worker.run_once(t1 + timedelta(seconds=25)) == 1
    [row] = await deliveries(session)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    ids = {got.headers["webhook-id"] for got in receiver.received}
    assert len(receiver.received) == 3
    assert len(ids) == 1  # every retry is the same message


async def test_attempts_are_capped_then_a_manual_retry_delivers(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    async with running(Receiver(statuses=[500, 302])) as receiver:
        hook = await subscribe(client, tokens.integration, url=receiver.url)
        await enqueue(session, ORG, "ally.unlisted", {"ally_id": uuid.uuid4()})
        await session.commit()
        worker = deliverer(database, settings, http, max_attempts=2)
        t0 = utcnow()
        await worker.run_once(t0)
        await worker.run_once(t0 + timedelta(hours=1))
        [row] = await deliveries(session)
        # A redirect is not followed: it counts as a failure like any non-2xx.
        assert (row.status, row.attempts, row.last_error) == ("failed", 2, "HTTP 302")
        assert row.next_attempt_at is None
        assert await worker.run_once(t0 + timedelta(days=1)) == 0
        retry = await client.post(
            f"/v1/webhooks/{hook['id']}/deliveries/{row.id}/retry", headers=tokens.integration
        )
        assert retry.status_code == 202, retry.text
        assert await worker.run_once() == 1
    [row] = await deliveries(session)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 200)
    assert len(receiver.received) == 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_receiver_is_recorded_without_details(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    await subscribe(client, tokens.integration, url=url)
    await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()
    assert await deliverer(database, settings, http).run_once() == 1
    [row] = await deliveries(session)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error == "ConnectError"


async def test_a_private_target_is_not_called_when_private_webhooks_are_off(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    """Registered while allowed (or re-pointed by DNS): the send-time check still refuses."""
    async with running(Receiver()) as receiver:
        await subscribe(client, tokens.integration, url=receiver.url)
        await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
        await session.commit()
        strict = settings.model_copy(update={"webhook_allow_private": False})
        assert await deliverer(database, strict, http).run_once() == 1
    assert receiver.received == []
    [row] = await deliveries(session)
    assert row.last_error == "blocked address"


async def test_a_claimed_delivery_is_leased_to_its_claimer(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    await subscribe(client, tokens.integration)
    await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()
    first, second = deliverer(database, settings, http), deliverer(database, settings, http)
    now = utcnow()
    assert len(await first.claim(now)) == 1
    assert await second.claim(now) == []
    assert await second.claim(now + timedelta(seconds=30)) == []
    # A claimer that died mid-send: after the lease, someone else retries (at least once).
    [again] = await second.claim(now + timedelta(seconds=61))
    assert again.attempt == 2


async def test_two_deliverers_racing_never_send_one_delivery_twice(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
) -> None:
    """Two processes' deliverers over one outbox (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    events = 30
    async with running(Receiver(delay=0.05)) as receiver:
        await subscribe(client, tokens.integration, url=receiver.url)
        for _ in range(events):
            await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
        await session.commit()
        async with new_client() as one, new_client() as two:
            workers = [
                deliverer(database, settings, one, batch_size=4),
                deliverer(database, settings, two, batch_size=4),
            ]
            counts = await asyncio.gather(*(worker.run_once() for worker in workers))
    assert sum(counts) == events
    ids = [got.headers["webhook-id"] for got in receiver.received]
    assert len(ids) == events
    assert len(set(ids)) == events
    assert set(receiver.max_in_flight_per_id.values()) == {1}
    assert all(row.status == "delivered" for row in await deliveries(session))


async def test_the_server_lifespan_runs_the_deliverer(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    """Wired in app.py: a server process delivers on its own, and stops cleanly."""
    from allyapi.app import create_app

    fast = settings.model_copy(update={"webhook_interval_seconds": 0.05})
    async with running(Receiver()) as receiver:
        await subscribe(client, tokens.integration, url=receiver.url)
        await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
        await session.commit()
        app = create_app(fast, Database(fast))
        async with app.router.lifespan_context(app):
            for _ in range(100):
                if receiver.received:
                    break
                await asyncio.sleep(0.05)
    assert len(receiver.received) == 1
    [row] = await deliveries(session)
    assert row.status == "delivered"


async def test_old_finished_deliveries_are_pruned(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    await subscribe(client, tokens.integration)
    for _ in range(2):
        await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()
    old, recent = await deliveries(session)
    old.status, old.updated_at = DeliveryStatus.delivered, utcnow() - timedelta(days=31)
    recent.status = DeliveryStatus.failed
    await session.commit()
    await deliverer(database, settings, http).run_once()
    assert [row.id for row in await deliveries(session)] == [recent.id]
