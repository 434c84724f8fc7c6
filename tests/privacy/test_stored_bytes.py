"""docs/privacy.md, P1 and P4, by construction: after a full story, the stored bytes hold no
requester identity and no plaintext, on whichever database this leg runs (SQLite file + WAL,
or a PostgreSQL dump)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import ContactRequest
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.helpers import TokenFactory
from tests.privacy.scenario import find_leaks, run_story


def pg_dump_binary() -> str:
    found = shutil.which("pg_dump") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)), None
    )
    if found is None:
        pytest.fail(
            "pg_dump is required for the PostgreSQL proof (apt-get install postgresql-client)"
        )
    return found


def read_with_sidecars(path: Path) -> bytes:
    data = path.read_bytes()
    for suffix in ("-wal", "-journal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            data += extra.read_bytes()
    return data


async def sqlite_bytes(database: Database) -> bytes:
    """The database file after a WAL checkpoint, plus whatever is still in -wal/-journal."""
    async with database.engine.connect() as connection:
        await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    path = make_url(database.url).database
    assert path
    return await asyncio.to_thread(read_with_sidecars, Path(path))


async def postgres_dump(database: Database) -> bytes:
    url = make_url(database.url)
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    process = await asyncio.create_subprocess_exec(
        pg_dump_binary(),
        "--data-only",
        "--host",
        url.host or "127.0.0.1",
        "--port",
        str(url.port or 5432),
        "--username",
        url.username or "postgres",
        "--dbname",
        url.database or "",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode(errors="replace")
    assert b"COPY public.contact_requests" in out  # the dump really holds our tables
    return out


async def test_stored_bytes_hold_no_requester_identity_or_plaintext(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    database: Database,
) -> None:
    story = await run_story(client, client, session, settings, tokens)

    if database.dialect == "sqlite":
        stored = await sqlite_bytes(database)
    else:
        stored = await postgres_dump(database)

    assert find_leaks(stored, story) == []
    # Not vacuous: the scanned bytes hold the story's current rows, sealed.
    row = await session.get(ContactRequest, story.completed_id, populate_existing=True)
    assert row is not None
    assert row.message_sealed is not None
    assert row.message_sealed.encode() in stored
