"""Backups taken under write load hold every write acknowledged before they started.

Copying the live SQLite file loses acknowledged writes (the newest commits are in the WAL);
``allyapi backup`` reads through SQLite (``VACUUM INTO``). PostgreSQL is backed up with
``pg_dump`` and restored with ``pg_restore``, as docs/operations.md says. Each test writes
from several clients while the backup runs, restores it, and looks for every acknowledged
write.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from allyapi.app import create_app
from allyapi.core.db.migrations import upgrade
from allyapi.core.db.models import table_of
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.resources.models import Resource
from tests.factories import process_env
from tests.helpers import TokenFactory
from tests.migrations.scratch import scratch_database_in_thread

WRITERS = 4


class Load:
    """Writers creating resources until stopped; every 201 is an acknowledged write."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.http, self.headers = http, headers
        self.acknowledged: list[str] = []
        self.stopping = asyncio.Event()
        self.backlog = asyncio.Event()  # enough written that most of it is still in the WAL

    async def writer(self, number: int) -> None:
        while not self.stopping.is_set():
            body = {"name": f"Line {number}-{uuid.uuid4().hex[:8]}", "category": "crisis"}
            response = await self.http.post("/v1/resources", json=body, headers=self.headers)
            assert response.status_code == 201, response.text
            self.acknowledged.append(response.json()["id"])
            if len(self.acknowledged) >= 50:
                self.backlog.set()

    async def around(self, backup: Callable[[], Awaitable[None]]) -> list[str]:
        """Runs ``backup`` while writing; the ids acknowledged before it started."""
        tasks = [asyncio.create_task(self.writer(n)) for n in range(WRITERS)]
        await self.backlog.wait()
        before = list(self.acknowledged)
        try:
            await backup()
        finally:
            self.stopping.set()
            await asyncio.gather(*tasks)
        assert len(self.acknowledged) > len(before)  # the writers kept writing meanwhile
        return before


@contextlib.asynccontextmanager
async def serving(settings: Settings, url: str) -> AsyncIterator[httpx.AsyncClient]:
    changes = {"database_url": url, "rate_limit_writes_per_minute": 100_000}
    database = Database(settings.model_copy(update=changes))
    app = create_app(settings.model_copy(update=changes), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await database.dispose()


async def run_cli(settings: Settings, *argv: str, **env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "allyapi",
        *argv,
        env=process_env(settings, **env),
        cwd=settings.data_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


def stored_ids(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {uuid.UUID(row[0]).hex for row in copy.execute("SELECT id FROM resources")}


async def test_allyapi_backup_under_write_load_keeps_every_acknowledged_write(
    settings: Settings, tokens: TokenFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live" / "allyapi.db"
    live.parent.mkdir()
    url = f"sqlite+aiosqlite:///{live}"
    await asyncio.to_thread(upgrade, url)
    target = tmp_path / "backups" / "allyapi-backup.db"
    target.parent.mkdir()
    async with serving(settings, url) as http:
        load = Load(http, tokens.coordinator)

        async def backup() -> None:
            code, output = await run_cli(settings, "backup", str(target), ALLYAPI_DATABASE_URL=url)
            assert code == 0, output
            assert "keep ALLYAPI_PSEUDONYM_KEY and ALLYAPI_DATA_KEYS apart" in output

        acknowledged = await load.around(backup)

    assert {uuid.UUID(i).hex for i in acknowledged} <= stored_ids(target)
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert not list(target.parent.glob("*-wal"))  # one self-contained file

    # Restore: the copy in place of the database (server stopped), and it serves them.
    restored = tmp_path / "restored" / "allyapi.db"
    restored.parent.mkdir()
    shutil.copyfile(target, restored)
    async with serving(settings, f"sqlite+aiosqlite:///{restored}") as http:
        for resource_id in acknowledged[:: max(len(acknowledged) // 20, 1)]:
            response = await http.get(f"/v1/resources/{resource_id}", headers=tokens.employee)
            assert response.status_code == 200, response.text


async def test_backup_refuses_postgresql_and_an_existing_file(
    settings: Settings, tmp_path: Path
) -> None:
    postgres = "postgresql+asyncpg://allyapi@127.0.0.1:9/allyapi"
    code, output = await run_cli(
        settings, "backup", str(tmp_path / "x.db"), ALLYAPI_DATABASE_URL=postgres
    )
    assert code == 2
    assert "pg_dump" in output
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"keep me")
    live = tmp_path / "live.db"
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{live}")
    code, output = await run_cli(
        settings, "backup", str(existing), ALLYAPI_DATABASE_URL=f"sqlite+aiosqlite:///{live}"
    )
    assert code == 2
    assert "exists" in output
    assert existing.read_bytes() == b"keep me"


def postgres_tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(f"{name} is required (apt-get install postgresql-client)")
    return found


async def postgres_tool_run(url: str, tool: str, *argv: str) -> None:
    parts = make_url(url)
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    connection = ["--host", parts.host or "127.0.0.1", "--port", str(parts.port or 5432)]
    connection += ["--username", parts.username or "postgres", "--dbname", parts.database or ""]
    process = await asyncio.create_subprocess_exec(
        postgres_tool(tool),
        *connection,
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


@pytest.mark.postgres_only
async def test_pg_dump_under_write_load_restores_every_acknowledged_write(
    settings: Settings, tokens: TokenFactory, tmp_path: Path
) -> None:
    dump = tmp_path / "allyapi.dump"
    async with (
        scratch_database_in_thread(tmp_path) as live,
        scratch_database_in_thread(tmp_path) as restored,
    ):
        await asyncio.to_thread(upgrade, live)
        async with serving(settings, live) as http:
            load = Load(http, tokens.coordinator)

            async def backup() -> None:
                await postgres_tool_run(live, "pg_dump", "--format=custom", f"--file={dump}")

            acknowledged = await load.around(backup)

        await postgres_tool_run(restored, "pg_restore", "--no-owner", str(dump))
        database = Database(settings.model_copy(update={"database_url": restored}))
        try:
            async with database.engine.connect() as connection:
                ids = set(await connection.scalars(sa.select(table_of(Resource).c.id)))
        finally:
            await database.dispose()
    assert {uuid.UUID(i) for i in acknowledged} <= ids
