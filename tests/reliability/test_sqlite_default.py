"""The embedded SQLite default under concurrency (docs/operations.md, "Processes").

Its own SQLite file (migrated here), so the checks hold on both test legs: the pragmas the
engine sets on every connection, and many concurrent writes through one process's ASGI app
with no ``database is locked``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import col

from allyapi.app import create_app
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.db.migrations import upgrade
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.resources.models import Resource
from tests.factories import make_ally
from tests.helpers import TokenFactory
from tests.reliability.harness import counts


@pytest.fixture(scope="module")
def sqlite_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    path: Path = tmp_path_factory.mktemp("sqlite-default") / "allyapi.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    return settings.model_copy(
        update={
            "database_url": url,
            "rate_limit_writes_per_minute": 100_000,
            "rate_limit_reads_per_minute": 100_000,
        }
    )


@pytest.fixture(scope="module")
async def sqlite_db(sqlite_settings: Settings) -> AsyncIterator[Database]:
    database = Database(sqlite_settings)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture(scope="module")
def sqlite_app(sqlite_settings: Settings, sqlite_db: Database) -> FastAPI:
    return create_app(sqlite_settings, sqlite_db)


async def test_every_connection_has_wal_busy_timeout_and_foreign_keys(
    sqlite_db: Database,
) -> None:
    # Several connections at once: each pooled connection gets the pragmas on connect.
    async with sqlite_db.engine.connect() as first, sqlite_db.engine.connect() as second:
        for connection in (first, second):
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
            assert pragmas == {
                "journal_mode": "wal",
                "busy_timeout": 5000,
                "foreign_keys": 1,
                "synchronous": 1,  # NORMAL: safe with WAL, fsync at checkpoints
            }


async def test_foreign_keys_are_enforced(sqlite_db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        async with sqlite_db.engine.begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO contact_messages (id, org_id, request_id, author, body_sealed,"
                " created_at) VALUES (?, 'acme', ?, 'ally', '', '2026-01-01')",
                (uuid.uuid4().hex, uuid.uuid4().hex),
            )


async def test_concurrent_writes_in_one_process_never_see_database_is_locked(
    sqlite_app: FastAPI, sqlite_db: Database, sqlite_settings: Settings, tokens: TokenFactory
) -> None:
    total = counts(50, 200)
    async with sqlite_db.sessionmaker() as session:
        allies = [
            await make_ally(session, sqlite_settings, capacity=50) for _ in range(total // 100 + 1)
        ]
    start = asyncio.Event()

    async def one(http: httpx.AsyncClient, n: int) -> httpx.Response:
        await start.wait()
        if n % 2:
            body = {"ally_id": str(allies[n // 100].id), "topic": "stress", "message": f"m{n}"}
            headers = {
                **tokens.headers(f"sqlite-writer-{n}", "employee"),
                "Idempotency-Key": str(uuid.uuid4()),
            }
            return await http.post("/v1/contact-requests", json=body, headers=headers)
        body = {"name": f"Resource {n} {uuid.uuid4().hex[:6]}", "category": "guide"}
        return await http.post("/v1/resources", json=body, headers=tokens.coordinator)

    transport = httpx.ASGITransport(app=sqlite_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        tasks = [asyncio.create_task(one(http, n)) for n in range(total)]
        await asyncio.sleep(0)
        start.set()
        responses = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: total}, [r.text for r in responses if r.status_code != 201][:3]
    assert not any(b"locked" in response.content for response in responses)
    async with sqlite_db.sessionmaker() as session:
        resources = await session.scalar(sa.select(sa.func.count(col(Resource.id))))
        requests = await session.scalar(sa.select(sa.func.count(col(ContactRequest.id))))
    assert (resources, requests) == (total // 2, total // 2)


async def test_read_then_write_requests_racing_creates_never_see_database_is_locked(
    sqlite_app: FastAPI, sqlite_db: Database, sqlite_settings: Settings, tokens: TokenFactory
) -> None:
    """Accept and thread messages read the request before writing (the lock-upgrade shape);
    they race fresh creates on the same allies."""
    n = counts(20, 100)
    async with sqlite_db.sessionmaker() as session:
        allies = [
            await make_ally(session, sqlite_settings, sub=f"busy-ally-{i}", capacity=50)
            for i in range(n // 10)
        ]
    ally_ids = [str(ally.id) for ally in allies]
    transport = httpx.ASGITransport(app=sqlite_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        pending = []
        for i in range(n):
            body = {"ally_id": ally_ids[i % len(allies)], "topic": "stress", "message": "m"}
            created = await http.post(
                "/v1/contact-requests", json=body, headers=tokens.headers(f"first-{i}", "employee")
            )
            assert created.status_code == 201, created.text
            pending.append((created.json()["id"], f"busy-ally-{i % len(allies)}", f"first-{i}"))

        async def accept_and_talk(request_id: str, ally: str, requester: str) -> list[int]:
            base = f"/v1/contact-requests/{request_id}"
            accepted = await http.post(f"{base}/accept", headers=tokens.headers(ally, "employee"))
            said = await http.post(
                f"{base}/messages",
                json={"body": "hello"},
                headers=tokens.headers(requester, "employee"),
            )
            return [accepted.status_code, said.status_code]

        async def create(i: int) -> list[int]:
            body = {"ally_id": ally_ids[i % len(allies)], "topic": "stress", "message": "m"}
            created = await http.post(
                "/v1/contact-requests", json=body, headers=tokens.headers(f"second-{i}", "employee")
            )
            return [created.status_code]

        results = await asyncio.wait_for(
            asyncio.gather(
                *(accept_and_talk(*entry) for entry in pending), *(create(i) for i in range(n))
            ),
            timeout=60,
        )

    statuses = Counter(status for result in results for status in result)
    assert statuses == {200: n, 201: 2 * n}, statuses
