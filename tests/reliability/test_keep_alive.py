"""Error answers never cost the client its connection, and key rotation never breaks a fleet.

With a real ``allyapi serve`` and one keep-alive connection, spoken to byte by byte so nothing
reconnects behind the test's back:

- an unhandled error is a 500 problem, and the same connection answers the next request (the
  exception used to reach uvicorn, which closed the connection after the response: a client
  could not tell whether its DELETE had happened);
- a replica whose key ring lacks the key a record was sealed with answers a 503 problem with
  ``Retry-After`` (never a 500), also on a kept-alive connection, and answers 200 once it has
  the new ring (PostgreSQL: two server processes with different rings).

The first test runs its server on a private SQLite file (it is about the HTTP server, so it
runs on both legs); the second needs two processes on one database, so PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.app import create_app
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.db.migrations import upgrade
from allyapi.core.db.session import Database, make_sessionmaker
from allyapi.core.settings import Settings
from tests.concurrency.conftest import Server
from tests.factories import make_ally, process_env
from tests.helpers import TokenFactory, assert_problem
from tests.reliability.harness import start_server, stop_server

IO_SECONDS = 30.0  # a bound for the test run, never a measurement


class ConnectionClosed(AssertionError):
    pass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.body)
        return loaded


class KeepAlive:
    """One HTTP/1.1 connection, used for several requests in a row."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Reply:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        return await asyncio.wait_for(self._reply(), IO_SECONDS)

    async def _reply(self) -> Reply:
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionClosed("the server closed the kept-alive connection")
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Reply(int(status_line.split()[1]), headers, body)


@contextlib.asynccontextmanager
async def keep_alive(server: Server) -> AsyncIterator[KeepAlive]:
    host, port = server.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield KeepAlive(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def create_body(ally_id: object) -> bytes:
    return json.dumps({"ally_id": str(ally_id), "topic": "stress", "message": "hello"}).encode()


JSON = {"Content-Type": "application/json"}


async def test_an_unhandled_error_is_a_500_problem_and_the_connection_stays_open(
    settings: Settings, tokens: TokenFactory, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'allyapi.db'}"
    await asyncio.to_thread(upgrade, url)
    private = Database(settings.model_copy(update={"database_url": url}))
    try:
        async with make_sessionmaker(private.engine)() as db:
            ally_id = (await make_ally(db, settings, sub="keep-alive-ally")).id
        server = await start_server(
            process_env(settings, ALLYAPI_DATABASE_URL=url), tmp_path / "server.log", tmp_path
        )
        try:
            await _break_one_request_and_keep_talking(server, private, tokens, ally_id)
        finally:
            await stop_server(server)
    finally:
        await private.dispose()
    assert b"Exception in ASGI application" not in server.log_bytes()


async def _break_one_request_and_keep_talking(
    server: Server, database: Database, tokens: TokenFactory, ally_id: uuid.UUID
) -> None:
    me = tokens.headers("emp-1", "employee")
    async with keep_alive(server) as connection:
        made = [
            await connection.send(
                "POST", "/v1/contact-requests", {**me, **JSON}, create_body(ally_id)
            )
            for _ in range(2)
        ]
        assert [reply.status for reply in made] == [201, 201]
        one, two = (uuid.UUID(str(reply.json()["id"])) for reply in made)
        async with database.engine.begin() as db:  # a value sealed for another row never opens
            other = (
                await db.execute(
                    sa.select(col(ContactRequest.message_sealed)).where(
                        col(ContactRequest.id) == two
                    )
                )
            ).scalar_one()
            await db.execute(
                sa.update(ContactRequest)
                .where(col(ContactRequest.id) == one)
                .values(message_sealed=other)
            )

        broken = await connection.send("GET", f"/v1/contact-requests/{one}", me)
        assert broken.status == 500
        assert broken.headers["content-type"] == "application/problem+json"
        assert broken.json()["type"] == "https://allyapi.dev/problems/internal"
        assert broken.headers["x-content-type-options"] == "nosniff"

        after = await connection.send("GET", f"/v1/contact-requests/{two}", me)
        assert after.status == 200
        assert after.json()["message"] == "hello"


def ring_of(*keys: tuple[str, bytes]) -> str:
    return ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in keys)


@pytest.mark.postgres_only
async def test_a_replica_without_the_new_key_answers_503_until_it_has_the_ring(
    settings: Settings, tokens: TokenFactory, session: AsyncSession, tmp_path: Path
) -> None:
    """The rotation mistake the README's steps prevent: one replica writes with a new key
    before another knows it. The late replica says 503 (retry), keeps the connection, and
    reads the record once it has the new ring."""
    old, new = ("k-old", secrets.token_bytes(32)), ("k-new", secrets.token_bytes(32))
    ally = await make_ally(session, settings, sub="rotating-ally")
    ally_id = ally.id
    ahead = await start_server(
        process_env(settings, ALLYAPI_DATA_KEYS=ring_of(new, old)), tmp_path / "ahead.log", tmp_path
    )
    behind = await start_server(
        process_env(settings, ALLYAPI_DATA_KEYS=ring_of(old)), tmp_path / "behind.log", tmp_path
    )
    me = tokens.headers("emp-1", "employee")
    try:
        async with keep_alive(ahead) as writer:
            created = await writer.send(
                "POST", "/v1/contact-requests", {**me, **JSON}, create_body(ally_id)
            )
        assert created.status == 201
        request_id = created.json()["id"]
        async with keep_alive(behind) as connection:
            for _ in range(3):
                unavailable = await connection.send("GET", f"/v1/contact-requests/{request_id}", me)
                assert unavailable.status == 503
                assert unavailable.headers["content-type"] == "application/problem+json"
                assert unavailable.headers["retry-after"].isdigit()
                assert unavailable.json()["type"] == "https://allyapi.dev/problems/key-unavailable"
            still_open = await connection.send("GET", "/v1/me/contact-requests", me)
            assert still_open.status == 200
        await stop_server(behind)
        behind = await start_server(
            process_env(settings, ALLYAPI_DATA_KEYS=ring_of(old, new)),
            tmp_path / "caught-up.log",
            tmp_path,
        )
        async with keep_alive(behind) as connection:
            read = await connection.send("GET", f"/v1/contact-requests/{request_id}", me)
        assert read.status == 200
        assert read.json()["message"] == "hello"
    finally:
        await asyncio.gather(stop_server(ahead), stop_server(behind))


async def test_an_unknown_key_id_is_a_503_problem_in_process(
    settings: Settings, database: Database, tokens: TokenFactory, session: AsyncSession
) -> None:
    """The same rule on both legs, without processes: the suite's app writes with ``k2``; an
    app whose ring still lacks ``k2`` answers 503 for that record, and 200 for the rest."""
    ally = await make_ally(session, settings, sub="ring-ally")
    me = tokens.headers("emp-1", "employee")
    behind_settings = Settings(
        **{**settings.model_dump(), "data_keys": ring_of(settings.data_key_ring[1])}
    )
    behind = httpx.ASGITransport(app=create_app(behind_settings, database))
    ahead = httpx.ASGITransport(app=create_app(settings, database))
    async with (
        httpx.AsyncClient(transport=ahead, base_url="http://ahead") as writer,
        httpx.AsyncClient(transport=behind, base_url="http://behind") as reader,
    ):
        created = await writer.post(
            "/v1/contact-requests",
            json={"ally_id": str(ally.id), "topic": "stress", "message": "hi"},
            headers=me,
        )
        assert created.status_code == 201, created.text
        response = await reader.get(f"/v1/contact-requests/{created.json()['id']}", headers=me)
        problem = assert_problem(response, 503)
        assert problem["type"] == "https://allyapi.dev/problems/key-unavailable"
        assert response.headers["retry-after"] == "5"
        assert (await reader.get("/v1/me/contact-requests", headers=me)).status_code == 200
