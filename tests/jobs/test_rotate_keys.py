"""``allyapi rotate-keys``: the small per-request keys (and the few values sealed straight under
the configured keys) re-sealed under the newest key, requests sealed the older way converted to
keys of their own, without downtime."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import ContactMessage, ContactRequest
from allyapi.contact_requests.rotation import LABEL, convert_legacy_requests
from allyapi.core.db.session import Database
from allyapi.core.privacy.crypto import Cipher, DecryptionError, aad_for, under_data_key
from allyapi.core.privacy.rotation import SealedColumn, rotate_column
from allyapi.core.settings import Settings
from allyapi.sealed_columns import REQUEST_SEALED_COLUMNS, SEALED_COLUMNS
from allyapi.tables import metadata
from tests.factories import make_ally, make_request, process_env
from tests.helpers import TokenFactory

ALL_SEALED = (*SEALED_COLUMNS, *REQUEST_SEALED_COLUMNS)


def ciphers(settings: Settings) -> tuple[Cipher, Cipher, Cipher]:
    """(k1 only, "k2,k1" as configured in tests, k2 only)."""
    ring = settings.data_key_ring
    assert [key_id for key_id, _ in ring] == ["k2", "k1"]
    return Cipher([ring[1]]), Cipher(ring), Cipher([ring[0]])


async def sealed_values(
    session: AsyncSession, registry: tuple[SealedColumn, ...] = ALL_SEALED
) -> list[tuple[str, object, str, str]]:
    """(aad table, row id, aad field, value) of every non-null sealed value."""
    values = []
    for sealed in registry:
        table = sealed.table
        rows = await session.execute(
            sa.select(table.c[sealed.id_column], table.c[sealed.column]).where(
                table.c[sealed.column].is_not(None)
            )
        )
        values += [(sealed.aad_table, row_id, sealed.aad_field, value) for row_id, value in rows]
    return values


async def rotate_all(database: Database, cipher: Cipher) -> dict[str, tuple[int, int, int]]:
    """What ``allyapi rotate-keys`` does (maintenance.rotate_keys), in small batches."""
    converted = await convert_legacy_requests(database.sessionmaker, cipher, batch_size=2)
    result = {LABEL: (converted.resealed, converted.remaining, converted.unreadable)}
    for sealed in SEALED_COLUMNS:
        count = await rotate_column(database.sessionmaker, sealed, cipher, batch_size=2)
        result[sealed.label] = (count.resealed, count.remaining, count.unreadable)
    return result


async def open_everything(session: AsyncSession, ring: Cipher) -> set[str]:
    """Every sealed value opened with ``ring`` alone: ring-sealed values directly, request
    values through their request's data key (itself opened with ``ring``). Raises if any
    value needs a key ``ring`` lacks."""
    keys = {
        row_id: ring.open_data_key(value, aad_for(table, row_id, name))
        for table, row_id, name, value in await sealed_values(session, SEALED_COLUMNS)
        if table == "contact_request_keys"
    }
    opened = {
        ring.open(value, aad_for(table, row_id, name))
        for table, row_id, name, value in await sealed_values(session, SEALED_COLUMNS)
        if table != "contact_request_keys"
    }
    pairs = await session.execute(sa.select(col(ContactMessage.id), col(ContactMessage.request_id)))
    messages = {message_id: request_id for message_id, request_id in pairs}
    for table, row_id, name, value in await sealed_values(session, REQUEST_SEALED_COLUMNS):
        assert under_data_key(value), (table, name)
        request_id = messages[row_id] if table == "contact_messages" else row_id
        opened.add(keys[request_id].open(value, aad_for(table, row_id, name)))
    return opened


def test_every_sealed_column_is_registered() -> None:
    """A new ``*_sealed`` column that rotate-keys would not know about fails here."""
    registered = {(s.table.name, s.column) for s in ALL_SEALED}
    assert len(registered) == len(ALL_SEALED)
    found = {
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_sealed")
    }
    assert found == registered, (
        "add every *_sealed column to allyapi/sealed_columns.py (rotate-keys)"
    )


async def test_rotation_gives_old_requests_their_own_key_under_the_newest_key(
    session: AsyncSession, settings: Settings, database: Database
) -> None:
    """Requests sealed the older way (straight under k1 or k2) get a data key, sealed under
    k2; afterwards k2 alone opens everything, and every request value is shreddable."""
    k1, configured, k2 = ciphers(settings)
    ally = await make_ally(session, settings)
    for n in range(3):
        await make_request(
            session, settings, k1, ally=ally, message=f"old secret {n}", thread=("a", "b")
        )
    await make_request(session, settings, configured, ally=ally, message="already new")
    before = await sealed_values(session)
    assert sum(value.startswith("k1.") for *_, value in before) == 15  # 3 x (3 fields + 2)

    counts = await rotate_all(database, configured)

    assert counts[LABEL] == (4 * 3 + 6, 0, 0)
    assert counts["contact_request_keys.key_sealed"] == (0, 0, 0)  # made under k2 already
    session.expire_all()
    after = await sealed_values(session)
    assert len(after) == len(before) + 4  # one data key per request
    assert {"old secret 0", "old secret 1", "old secret 2", "already new", "a", "b"} <= (
        await open_everything(session, k2)
    )

    again = await rotate_all(database, configured)  # idempotent
    assert all(count == (0, 0, 0) for count in again.values())


async def test_rotation_rewraps_the_small_keys_and_leaves_the_content_alone(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    database: Database,
    tokens: TokenFactory,
) -> None:
    """A new key k3 put first: only the per-request keys are re-sealed; every message,
    contact detail and thread body stays byte for byte what it was."""
    ally = await make_ally(session, settings, sub="rotation-ally")
    for n in range(3):
        created = await client.post(
            "/v1/contact-requests",
            json={"ally_id": str(ally.id), "topic": "stress", "message": f"new secret {n}"},
            headers=tokens.headers(f"rotating-{n}", "employee"),
        )
        assert created.status_code == 201, created.text
    content_before = await sealed_values(session, REQUEST_SEALED_COLUMNS)
    k3 = ("k3", os.urandom(32))
    newest = Cipher([k3, *settings.data_key_ring])

    counts = await rotate_all(database, newest)

    assert counts[LABEL] == (0, 0, 0)
    assert counts["contact_request_keys.key_sealed"] == (3, 0, 0)
    session.expire_all()
    assert await sealed_values(session, REQUEST_SEALED_COLUMNS) == content_before
    keys = await sealed_values(session, SEALED_COLUMNS)
    assert [value[:3] for table, *_, value in keys if table == "contact_request_keys"] == [
        "k3."
    ] * 3
    opened = await open_everything(session, Cipher([k3]))
    assert {"new secret 0", "new secret 1", "new secret 2"} <= opened


async def test_unreadable_values_are_reported_and_left_alone(
    session: AsyncSession, settings: Settings, database: Database
) -> None:
    """A value no configured key opens is never overwritten (it might be a missing old key)."""
    _, configured, _ = ciphers(settings)
    stranger = Cipher([("k0", os.urandom(32))])
    ally = await make_ally(session, settings)
    request = await make_request(session, settings, stranger, ally=ally)

    counts = await rotate_all(database, configured)

    assert counts[LABEL] == (0, 0, 3)  # message, contact detail, alias
    row = await session.get(ContactRequest, request.id, populate_existing=True)
    assert row is not None
    assert row.message_sealed is not None
    assert row.message_sealed.startswith("k0.")
    with pytest.raises(DecryptionError):
        configured.open(row.message_sealed, aad_for("contact_requests", row.id, "message"))


@pytest.mark.postgres_only
async def test_rows_locked_by_a_live_request_are_skipped_not_waited_for(
    session: AsyncSession, settings: Settings, database: Database
) -> None:
    k1, configured, _ = ciphers(settings)
    ally = await make_ally(session, settings)
    busy = await make_request(session, settings, k1, ally=ally)
    await make_request(session, settings, k1, ally=ally)

    async with database.sessionmaker() as live, live.begin():
        await live.execute(
            sa.select(col(ContactRequest.id))
            .where(col(ContactRequest.id) == busy.id)
            .with_for_update()
        )
        count = await asyncio.wait_for(
            convert_legacy_requests(database.sessionmaker, configured), timeout=10
        )
        assert (count.resealed, count.remaining) == (3, 3)

    count = await convert_legacy_requests(database.sessionmaker, configured)
    assert (count.resealed, count.remaining) == (3, 0)


async def test_cli_rotate_keys_then_only_the_new_key_opens_everything(
    session: AsyncSession, settings: Settings, database: Database
) -> None:
    """The real command, in a subprocess, configured "k2,k1"; afterwards k2 alone suffices."""
    k1, _, k2 = ciphers(settings)
    ally = await make_ally(session, settings)
    await make_request(session, settings, k1, ally=ally, thread=("hello",))

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "allyapi",
        "rotate-keys",
        env=process_env(settings),
        cwd=settings.data_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert f"{LABEL}: resealed 4, remaining 0, unreadable 0" in out.decode()
    assert "contact_request_keys.key_sealed: resealed 0, remaining 0" in out.decode()

    session.expire_all()
    assert "hello" in await open_everything(session, k2)  # raises if any value needs k1
