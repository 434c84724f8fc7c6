"""A create to a named ally costs at most three round trips to PostgreSQL (BEGIN and COMMIT
count as one each), and stores exactly what the transactional path stores.

Counted with SQLAlchemy events on every engine of the app's database (statements sent, and
transactions begun and committed on the engines that run transactions), and at
``DriverStatement.fetchrow`` for the statements run on asyncpg's own connection, which
SQLAlchemy's events never see.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import ContactRequest, ContactRequestKey, RequesterLoad
from allyapi.core.db.driver import DriverStatement
from allyapi.core.db.session import Database
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.core.settings import Settings
from allyapi.webhooks.models import WebhookDelivery
from tests.contact_requests.factories import BODY, load_of, make_ally
from tests.helpers import TokenFactory

pytestmark = pytest.mark.postgres_only
MAX_ROUND_TRIPS = 3


@contextmanager
def round_trips(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    sent: list[str] = []
    run_on_driver = DriverStatement.fetchrow

    async def fetchrow(self: DriverStatement, *args: Any) -> Any:
        sent.append("DRIVER " + self.sql.split(None, 1)[0])
        return await run_on_driver(self, *args)

    monkeypatch.setattr(DriverStatement, "fetchrow", fetchrow)

    def statement(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        sent.append(sql.split(None, 1)[0])

    def begin(_conn: Any) -> None:
        sent.append("BEGIN")

    def commit(_conn: Any) -> None:
        sent.append("COMMIT")

    hooks: list[tuple[Any, str, Any]] = []
    for engine in {database.engine, database.session_engine, database.autocommit}:
        hooks.append((engine.sync_engine, "before_cursor_execute", statement))
        if engine is not database.autocommit:  # autocommit: the driver sends no BEGIN
            hooks += [(engine.sync_engine, "begin", begin), (engine.sync_engine, "commit", commit)]
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    try:
        yield sent
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)


async def test_a_create_to_a_named_ally_takes_at_most_three_round_trips(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ally = await make_ally(session, settings, "robin", name="Robin")
    headers = {**tokens.employee, "Idempotency-Key": str(uuid.uuid4())}
    body = {**BODY, "ally_id": str(ally.id)}
    with round_trips(database, monkeypatch) as sent:
        created = await client.post("/v1/contact-requests", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert len(sent) <= MAX_ROUND_TRIPS, sent
    # In fact one: the statement that counts the write and stores the request (plus, once per
    # process and rate-limit window, the sweep of ended windows).
    assert [sql for sql in sent if sql != "DELETE"] == ["DRIVER WITH"], sent
    request_id = uuid.UUID(created.json()["id"])
    assert created.json()["ally"]["display_name"] == "Robin"

    stored = await session.get(ContactRequest, request_id)
    assert stored is not None
    assert stored.ally_id == ally.id
    assert await session.get(ContactRequestKey, request_id) is not None
    assert await load_of(session, ally.id) == 1
    loads = (await session.execute(select(RequesterLoad.open_requests))).scalars().all()
    assert loads == [1]
    claimed = (await session.execute(select(IdempotencyKey))).scalars().one()
    assert (claimed.resource_id, claimed.status_code) == (request_id, 201)

    replay = await client.post("/v1/contact-requests", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == str(request_id)


async def test_a_refused_create_leaves_nothing_behind(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
) -> None:
    """The slot refused after the key was claimed and the cap taken: all of it undone, and the
    answer is the transactional path's 409 with alternatives."""
    full = await make_ally(session, settings, "full", name="Full", capacity=1, open_requests=1)
    headers = {**tokens.employee, "Idempotency-Key": str(uuid.uuid4())}
    refused = await client.post(
        "/v1/contact-requests", json={**BODY, "ally_id": str(full.id)}, headers=headers
    )
    assert refused.status_code == 409, refused.text
    await session.rollback()
    assert (await session.execute(select(IdempotencyKey))).first() is None
    assert (await session.execute(select(RequesterLoad))).first() is None
    assert (await session.execute(select(ContactRequest))).first() is None
    assert await load_of(session, full.id) == 1


async def test_webhook_subscribers_get_the_assignment(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
) -> None:
    ally = await make_ally(session, settings, "robin", name="Robin")
    integration = tokens.headers("hris", "integration")
    subscribed = await client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/a", "events": ["contact_request.assigned"]},
        headers=integration,
    )
    assert subscribed.status_code == 201, subscribed.text
    created = await client.post(
        "/v1/contact-requests", json={**BODY, "ally_id": str(ally.id)}, headers=tokens.employee
    )
    assert created.status_code == 201, created.text
    deliveries = (await session.execute(select(WebhookDelivery))).scalars().all()
    assert [d.contact_request_id for d in deliveries] == [uuid.UUID(created.json()["id"])]
    assert deliveries[0].event_type == "contact_request.assigned"
    assert str(ally.id) in deliveries[0].body
