"""Directory pages are cached per process, and every change shows at once (both databases).

The cache must never serve a page older than the change a caller just made, a page of
another view or organisation, or a page to a caller not allowed to read it
(core/db/directory_cache.py, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

import allyapi.allies.directory as ally_directory
from allyapi.allies.repository import COORDINATOR_VIEW_COLUMNS, LISTED
from allyapi.core.db.directory_cache import TTL_SECONDS, touches_directory
from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.allies.factories import active_ally, employee, required_course
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem


@contextmanager
def directory_queries(database: Database) -> Iterator[list[str]]:
    """The directory SELECTs this process sends while the block runs."""
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM allies" in statement:
            seen.append(statement)

    engine = database.autocommit.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def ready(client: httpx.AsyncClient, database: Database, headers: dict[str, str]) -> None:
    """A first read starts PostgreSQL's listener; pages are cached once it listens."""
    assert (await client.get("/v1/allies", headers=headers)).status_code == 200
    for _ in range(100):
        if database.directory_cache.usable:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the directory listener never connected")


async def names(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> list[str]:
    response = await client.get(f"/v1/allies{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [item["display_name"] for item in response.json()["items"]]


async def test_a_page_is_read_once_and_a_change_shows_at_once(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    ally = await active_ally(client, tokens, "alex", display_name="Alex")
    await ready(client, database, tokens.employee)
    assert await names(client, tokens.employee) == ["Alex"]
    with directory_queries(database) as seen:
        for _ in range(5):
            assert await names(client, tokens.employee) == ["Alex"]
    assert seen == []
    changed = await client.patch(
        "/v1/me/ally-profile", json={"display_name": "Alexa"}, headers=employee(tokens, "alex")
    )
    assert changed.status_code == 200, changed.text
    assert await names(client, tokens.employee) == ["Alexa"]
    paused = await client.post(f"/v1/allies/{ally['id']}/pause", headers=tokens.coordinator)
    assert paused.status_code == 200, paused.text
    assert await names(client, tokens.employee) == []


async def test_views_organisations_and_roles_never_share_a_page(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    await active_ally(client, tokens, "alex", display_name="Alex")
    await ready(client, database, tokens.employee)
    public = (await client.get("/v1/allies", headers=tokens.employee)).json()
    managed = (await client.get("/v1/allies", headers=tokens.coordinator)).json()
    assert "status" not in public["items"][0]
    assert managed["items"][0]["status"] == "active"
    other = tokens.headers("emp-x", "employee", org=OTHER_ORG)
    assert (await client.get("/v1/allies", headers=other)).json()["items"] == []
    # The role check and authentication run before any cached page is looked at.
    refused = await client.get("/v1/allies?status=active", headers=tokens.employee)
    assert_problem(refused, 403)
    assert_problem(await client.get("/v1/allies"), 401)


async def test_etag_and_if_none_match(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    await active_ally(client, tokens, "alex", display_name="Alex")
    await ready(client, database, tokens.employee)
    first = await client.get("/v1/allies", headers=tokens.employee)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, max-age=1"
    assert first.headers["vary"] == "Authorization"
    again = await client.get(
        "/v1/allies", headers={**tokens.employee, "If-None-Match": f'W/{etag}, "other"'}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["ratelimit"].startswith('"reads"')
    changed = await client.patch(
        "/v1/me/ally-profile", json={"bio": "Changed."}, headers=employee(tokens, "alex")
    )
    assert changed.status_code == 200
    fresh = await client.get("/v1/allies", headers={**tokens.employee, "If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != etag
    assert fresh.json()["items"][0]["bio"] == "Changed."


async def test_writes_outside_the_api_show_at_once(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, session: AsyncSession
) -> None:
    """Training recorded (here: a required course appearing) unlists allies, whatever code
    wrote it, as long as it went through this process's engines."""
    await active_ally(client, tokens, "alex", display_name="Alex")
    await ready(client, database, tokens.employee)
    assert await names(client, tokens.employee) == ["Alex"]
    await required_course(session)
    assert await names(client, tokens.employee) == []


async def test_a_new_day_is_a_new_page(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    database: Database,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An expired course unlists an ally at midnight with no write at all."""
    await active_ally(client, tokens, "alex", display_name="Alex")
    await ready(client, database, tokens.employee)
    assert await names(client, tokens.employee) == ["Alex"]
    with directory_queries(database) as seen:
        monkeypatch.setattr(ally_directory, "today", lambda: today().replace(year=today().year + 1))
        assert await names(client, tokens.employee) == ["Alex"]
    assert len(seen) == 1


async def test_another_process_s_write_shows_within_the_ttl(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    database: Database,
    settings: Settings,
) -> None:
    """A write this process cannot hear of (another process on SQLite) shows within the TTL;
    on PostgreSQL the notification brings it within milliseconds."""
    await active_ally(client, tokens, "alex", display_name="Alex")
    await ready(client, database, tokens.employee)
    assert await names(client, tokens.employee) == ["Alex"]
    elsewhere = Database(settings)  # another process's engines and cache
    try:
        async with elsewhere.engine.begin() as connection:
            await connection.execute(text("UPDATE allies SET display_name = 'Alexis'"))
    finally:
        await elsewhere.dispose()
    started = time.monotonic()
    while await names(client, tokens.employee) != ["Alexis"]:
        assert time.monotonic() - started < TTL_SECONDS + 1
        await asyncio.sleep(0.05)
    if database.dialect == "postgresql":
        assert time.monotonic() - started < 1


@pytest.mark.postgres_only
async def test_a_lost_listener_serves_nothing_stale(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, settings: Settings
) -> None:
    """Notifications sent while the LISTEN connection is down are lost: the cache is off
    until it is back, and everything is forgotten when it is."""
    await active_ally(client, tokens, "alex", display_name="Alex")
    await ready(client, database, tokens.employee)
    assert await names(client, tokens.employee) == ["Alex"]
    assert database.directory_listener is not None
    async with database.engine.connect() as admin:
        killed = await admin.scalar(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": database.directory_listener.server_pid},
        )
    assert killed
    elsewhere = Database(settings)
    try:
        async with elsewhere.engine.begin() as connection:
            await connection.execute(text("UPDATE allies SET display_name = 'Alexis'"))
    finally:
        await elsewhere.dispose()
    assert await names(client, tokens.employee) == ["Alexis"]
    await ready(client, database, tokens.employee)  # reconnects
    assert await names(client, tokens.employee) == ["Alexis"]


def test_what_counts_as_a_directory_change() -> None:
    assert touches_directory(
        "UPDATE allies SET display_name=$1, updated_at=$2 WHERE allies.id = $3"
    )
    assert touches_directory("DELETE FROM training_records WHERE id = $1")
    assert touches_directory("INSERT INTO allies (id, org_id) VALUES ($1, $2)")
    # A contact request moving an ally's load changes nothing the directory shows.
    assert not touches_directory(
        "UPDATE allies SET open_requests=(allies.open_requests + $1::INTEGER) "
        "WHERE allies.org_id = $2 RETURNING allies.id"
    )
    assert not touches_directory("SELECT allies.id FROM allies")
    assert not touches_directory("UPDATE contact_requests SET status=$1 WHERE ally_id = $2")


# The trigger's definition as the database keeps it (migration 0016 and any that recreate it).
TRIGGER_SQL = {
    "sqlite": "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :name",
    "postgresql": "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = :name",
}


async def test_other_processes_hear_of_a_change_to_every_field_the_directory_shows(
    database: Database,
) -> None:
    """An ally update fires the generation trigger only when a listed column changes: a
    column a view reads but the trigger omits would reach other processes only at the TTL."""
    async with database.engine.connect() as connection:
        definition = await connection.scalar(
            text(TRIGGER_SQL[database.dialect]), {"name": "allies_directory_update"}
        )
    assert definition
    for name in COORDINATOR_VIEW_COLUMNS:
        if name not in ("id", LISTED):
            assert re.search(rf"\b{name}\b", definition), name
