"""Crypto-shredding: an erased request's ciphertext, wherever a copy lies, no longer opens.

Each request's content is sealed with a random key of its own, stored sealed under the
configured data keys in a row that erasure and purge delete (contact_requests/sealing.py).
Before, the content was sealed under the configured key itself: a copy left on disk after a
204 (SQLite file or -wal, a PostgreSQL heap page) decrypted with that key.

- SQLite: the file and its -wal hold neither the sealed content nor the sealed key after the
  erasure (``secure_delete`` zeroes freed space, the log is checkpointed and truncated).
- PostgreSQL: MVCC leaves the old row versions in the heap pages until vacuum reuses the
  space, and vacuum does not zero it. The content copy there opens with nothing the database
  still holds, and never with the configured keys alone. The dead copy of the request's key
  still opens with the key that sealed it until that key is retired: the last test shows that
  after ``rotate-keys`` and dropping the old key, it opens with nothing configured either.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import ContactRequest, ContactRequestKey
from allyapi.contact_requests.sealing import key_aad
from allyapi.core.db.session import Database
from allyapi.core.privacy.crypto import (
    Cipher,
    DecryptionError,
    UnknownDataKey,
    aad_for,
    open_record_value,
)
from allyapi.core.privacy.rotation import rotate_column
from allyapi.core.settings import Settings
from allyapi.sealed_columns import SEALED_COLUMNS
from tests.factories import make_ally
from tests.helpers import TokenFactory
from tests.privacy.test_stored_bytes import postgres_dump, read_with_sidecars


@dataclass(frozen=True)
class Captured:
    """What a copy of the database taken before the erasure would hold."""

    id: uuid.UUID
    message: str
    message_sealed: str
    key_sealed: str

    @property
    def aad(self) -> str:
        return aad_for("contact_requests", self.id, "message")


async def erase_and_capture(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> Captured:
    ally = await make_ally(session, settings, sub="shred-ally")
    me = tokens.headers("shred-requester", "employee")
    message = f"shred me {uuid.uuid4().hex}"
    created = await client.post(
        "/v1/contact-requests",
        json={"ally_id": str(ally.id), "topic": "stress", "message": message},
        headers=me,
    )
    assert created.status_code == 201, created.text
    request_id = uuid.UUID(created.json()["id"])
    row = await session.get(ContactRequest, request_id)
    key = await session.get(ContactRequestKey, request_id)
    assert row is not None
    assert row.message_sealed is not None
    assert key is not None
    captured = Captured(request_id, message, row.message_sealed, key.key_sealed)
    await session.rollback()
    erased = await client.delete(f"/v1/contact-requests/{request_id}", headers=me)
    assert erased.status_code == 204
    return captured


async def relation_bytes(database: Database, table: str) -> bytes:
    """The table's heap file as PostgreSQL wrote it (dead row versions included), after a
    checkpoint flushed its pages. Needs a superuser, as the test server's ``postgres`` is."""
    async with database.autocommit.connect() as connection:
        await connection.execute(sa.text("CHECKPOINT"))
        data = await connection.scalar(
            sa.text("SELECT pg_read_binary_file(pg_relation_filepath(CAST(:t AS regclass)))"),
            {"t": table},
        )
    return bytes(data or b"")


async def sqlite_bytes(database: Database) -> bytes:
    path = make_url(database.url).database
    assert path
    return await asyncio.to_thread(read_with_sidecars, Path(path))


async def test_an_erased_requests_ciphertext_no_longer_opens_with_the_configured_keys(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    database: Database,
) -> None:
    captured = await erase_and_capture(client, session, settings, tokens)
    ring = Cipher(settings.data_key_ring)

    # The configured keys alone never opened it, and the key that did is gone.
    with pytest.raises(DecryptionError):
        ring.open(captured.message_sealed, captured.aad)
    with pytest.raises(DecryptionError):
        open_record_value(captured.message_sealed, captured.aad, ring, None)
    assert await session.get(ContactRequestKey, captured.id) is None

    if database.dialect == "sqlite":
        stored = await sqlite_bytes(database)
        for value in (captured.message_sealed, captured.key_sealed, captured.message):
            assert value.encode() not in stored
    else:
        dump = await postgres_dump(database)
        for value in (captured.message_sealed, captured.key_sealed, captured.message):
            assert value.encode() not in dump
        pages = await relation_bytes(database, "contact_requests")
        assert captured.message.encode() not in pages  # never stored in clear
        # Whether or not the dead row version is still in the page, what it holds opens
        # with nothing the database or the configuration still has (asserted above).


@pytest.mark.postgres_only
async def test_a_dead_copy_of_the_key_dies_with_the_key_rotation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    database: Database,
) -> None:
    """The residual, stated and bounded: the deleted key row's old version lingers in the key
    table's pages (and WAL, and backups) sealed under a configured key, until that key is
    retired. ``rotate-keys`` re-wraps only the small live keys; once the old data keys are
    dropped from the ring, no copy of an erased request's key opens any more."""
    captured = await erase_and_capture(client, session, settings, tokens)
    old_ring = Cipher(settings.data_key_ring)
    aad = key_aad(captured.id)
    # What a thief of the pages *and* the current keys could still do, until rotation:
    stale = old_ring.open_data_key(captured.key_sealed, aad)
    assert stale.open(captured.message_sealed, captured.aad) == captured.message

    newest, old_keys = ("k3", os.urandom(32)), settings.data_key_ring
    for sealed in SEALED_COLUMNS:  # `allyapi rotate-keys` with k3 first
        count = await rotate_column(database.sessionmaker, sealed, Cipher([newest, *old_keys]))
        assert count.remaining == 0
    retired = Cipher([newest])  # k1 and k2 dropped from ALLYAPI_DATA_KEYS
    with pytest.raises(UnknownDataKey):
        retired.open_data_key(captured.key_sealed, aad)
    pages = await relation_bytes(database, "contact_request_keys")
    assert captured.message.encode() not in pages
