"""The erasure migration finds the deliveries written before it: per-request events carried
the request id only in their body, and erasure deletes deliveries by the new indexed column."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from allyapi.core.db.migrations import upgrade
from allyapi.core.db.session import make_engine
from tests.migrations.scratch import scratch_database

SUBSCRIPTIONS = sa.table(
    "webhook_subscriptions",
    *(sa.column(name) for name in ("org_id", "url", "secret_sealed")),
    sa.column("id", sa.Uuid()),
    sa.column("events", sa.JSON()),
    sa.column("created_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)
DELIVERIES = sa.table(
    "webhook_deliveries",
    *(sa.column(name) for name in ("org_id", "event_type", "body", "status")),
    sa.column("id", sa.Uuid()),
    sa.column("subscription_id", sa.Uuid()),
    sa.column("event_id", sa.Uuid()),
    sa.column("contact_request_id", sa.Uuid()),
    sa.column("attempts", sa.Integer()),
    sa.column("created_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)


def delivery(subscription: uuid.UUID, event_type: str, data: dict[str, str]) -> dict[str, object]:
    now = datetime(2026, 11, 1, tzinfo=UTC).replace(tzinfo=None)
    body = {"id": "e", "type": event_type, "created_at": "2026-11-01T00:00:00Z", "org": "acme"}
    return {
        "id": uuid.uuid4(),
        "org_id": "acme",
        "subscription_id": subscription,
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "body": json.dumps({**body, "data": data}, separators=(",", ":"), sort_keys=True),
        "status": "failed",
        "attempts": 8,
        "created_at": now,
        "updated_at": now,
    }


async def _write_old_deliveries(url: str, request_id: uuid.UUID) -> None:
    engine = make_engine(url)
    subscription = uuid.uuid4()
    now = datetime(2026, 11, 1)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                SUBSCRIPTIONS.insert().values(
                    id=subscription,
                    org_id="acme",
                    url="https://hooks.example.test/a",
                    events=["contact_request.assigned", "ally.listed"],
                    secret_sealed="k.x",
                    created_at=now,
                    updated_at=now,
                )
            )
            await connection.execute(
                DELIVERIES.insert(),
                [
                    delivery(
                        subscription,
                        "contact_request.assigned",
                        {"contact_request_id": str(request_id), "ally_id": str(uuid.uuid4())},
                    ),
                    delivery(subscription, "ally.listed", {"ally_id": str(uuid.uuid4())}),
                ],
            )
    finally:
        await engine.dispose()


async def _linked(url: str) -> dict[str, uuid.UUID | None]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.select(DELIVERIES.c.event_type, DELIVERIES.c.contact_request_id)
            )
            return {event_type: request_id for event_type, request_id in rows}
    finally:
        await engine.dispose()


def test_deliveries_of_per_request_events_get_their_request_id(tmp_path: Path) -> None:
    request_id = uuid.uuid4()
    with scratch_database(tmp_path) as url:
        upgrade(url, "0007")
        asyncio.run(_write_old_deliveries(url, request_id))
        upgrade(url, "0010")
        assert asyncio.run(_linked(url)) == {
            "contact_request.assigned": request_id,
            "ally.listed": None,
        }
