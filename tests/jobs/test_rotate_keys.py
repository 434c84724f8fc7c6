"""``allyapi rotate-keys``: old values re-sealed under the newest key, without downtime (P4)."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import ContactRequest
from allyapi.core.crypto import Cipher, DecryptionError, aad_for
from allyapi.core.database import Database
from allyapi.core.sealed import rotate_column
from allyapi.core.settings import Settings
from allyapi.sealed import SEALED_COLUMNS
from allyapi.tables import metadata
from tests.jobs.factories import make_ally, make_request, process_env


def ciphers(settings: Settings) -> tuple[Cipher, Cipher, Cipher]:
    """(k1 only, "k2,k1" as configured in tests, k2 only)."""
    ring = settings.data_key_ring
    assert [key_id for key_id, _ in ring] == ["k2", "k1"]
    return Cipher([ring[1]]), Cipher(ring), Cipher([ring[0]])


async def sealed_values(session: AsyncSession) -> list[tuple[str, object, str, str]]:
    """(aad table, row id, aad field, value) of every non-null sealed value."""
    values = []
    for sealed in SEALED_COLUMNS:
        table = sealed.table
        rows = await session.execute(
            sa.select(table.c[sealed.id_column], table.c[sealed.column]).where(
                table.c[sealed.column].is_not(None)
            )
        )
        values += [(sealed.aad_table, row_id, sealed.aad_field, value) for row_id, value in rows]
    return values


async def rotate_all(database: Database, cipher: Cipher) -> dict[str, tuple[int, int, int]]:
    result = {}
    for sealed in SEALED_COLUMNS:
        count = await rotate_column(database.sessionmaker, sealed, cipher, batch_size=2)
        result[sealed.label] = (count.resealed, count.remaining, count.unreadable)
    return result


def test_every_sealed_column_is_registered() -> None:
    """A new ``*_sealed`` column that rotate-keys would not know about fails here."""
    registered = {(s.table.name, s.column) for s in SEALED_COLUMNS}
    found = {
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_sealed")
    }
    assert found == registered, "add every *_sealed column to allyapi/sealed.py (rotate-keys)"


async def test_rotation_reseals_old_values_under_the_newest_key(
    session: AsyncSession, settings: Settings, database: Database
) -> None:
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

    assert counts["contact_requests.message_sealed"] == (3, 0, 0)
    assert counts["contact_messages.body_sealed"] == (6, 0, 0)
    session.expire_all()
    after = await sealed_values(session)
    assert len(after) == len(before)
    assert all(value.startswith("k2.") for *_, value in after)
    opened = {k2.open(value, aad_for(table, row_id, name)) for table, row_id, name, value in after}
    assert {"old secret 0", "old secret 1", "old secret 2", "already new", "a", "b"} <= opened

    again = await rotate_all(database, configured)  # idempotent
    assert all(count == (0, 0, 0) for count in again.values())


async def test_unreadable_values_are_reported_and_left_alone(
    session: AsyncSession, settings: Settings, database: Database
) -> None:
    """A value no configured key opens is never overwritten (it might be a missing old key)."""
    _, configured, _ = ciphers(settings)
    stranger = Cipher([("k0", os.urandom(32))])
    ally = await make_ally(session, settings)
    request = await make_request(session, settings, stranger, ally=ally)

    counts = await rotate_all(database, configured)

    assert counts["contact_requests.message_sealed"] == (0, 0, 1)
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
        sealed = SEALED_COLUMNS[0]
        count = await asyncio.wait_for(
            rotate_column(database.sessionmaker, sealed, configured), timeout=10
        )
        assert (count.resealed, count.remaining) == (1, 1)

    count = await rotate_column(database.sessionmaker, SEALED_COLUMNS[0], configured)
    assert (count.resealed, count.remaining) == (1, 0)


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
    assert "contact_requests.message_sealed: resealed 1, remaining 0" in out.decode()
    assert "contact_messages.body_sealed: resealed 1, remaining 0" in out.decode()

    session.expire_all()
    for table, row_id, name, value in await sealed_values(session):
        k2.open(value, aad_for(table, row_id, name))  # raises if any value needs k1
