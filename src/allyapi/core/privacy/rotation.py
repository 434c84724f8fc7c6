"""Sealed (encrypted at rest: docs/privacy.md, P4) columns and their re-sealing under the
newest key.

A :class:`SealedColumn` names where a sealed value lives and how its associated data is built
(``aad_for(aad_table, row id, aad_field)``). The registry of every such column is
``allyapi.sealed_columns.SEALED_COLUMNS``; :func:`rotate_column` re-seals one column in short
batches, so ``allyapi rotate-keys`` runs next to live traffic without downtime:

- each batch is its own short transaction (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so rows a
  request is changing right now are skipped, not waited for, and picked up by the next run);
- each row is written back only if it still holds the value that was read, so a concurrent
  erasure or purge is never undone;
- ``version``/``updated_at`` are not touched: re-sealing changes no visible fact of a row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from allyapi.core.privacy.crypto import Cipher, DecryptionError, aad_for


@dataclass(frozen=True)
class SealedColumn:
    table: sa.Table
    column: str  # the column holding "<key id>.<ciphertext>"
    aad_table: str
    aad_field: str
    id_column: str = "id"

    @property
    def label(self) -> str:
        return f"{self.table.name}.{self.column}"


@dataclass
class RotationCount:
    resealed: int = 0
    unreadable: int = 0  # opened by no configured key: left as is, never destroyed
    remaining: int = 0  # still under an old key after the run (locked by a live request)


def _not_current(sealed: SealedColumn, cipher: Cipher) -> sa.ColumnElement[bool]:
    value = sealed.table.c[sealed.column]
    prefix = cipher.write_key_id + "."
    # substr, not LIKE: a key id may contain LIKE wildcards.
    return sa.and_(value.is_not(None), sa.func.substr(value, 1, len(prefix)) != prefix)


async def _reseal_batch(
    session: AsyncSession,
    sealed: SealedColumn,
    cipher: Cipher,
    after: uuid.UUID | None,
    batch_size: int,
    count: RotationCount,
) -> uuid.UUID | None:
    """Re-seal up to ``batch_size`` rows after ``after`` (id order); the last id seen or None."""
    row_id = sealed.table.c[sealed.id_column]
    value = sealed.table.c[sealed.column]
    query = sa.select(row_id, value).where(_not_current(sealed, cipher))
    if after is not None:
        query = query.where(row_id > after)
    query = query.order_by(row_id).limit(batch_size).with_for_update(skip_locked=True)
    rows = (await session.execute(query)).all()
    for current_id, old in rows:
        aad = aad_for(sealed.aad_table, current_id, sealed.aad_field)
        try:
            new = cipher.seal(cipher.open(old, aad), aad)
        except DecryptionError:
            count.unreadable += 1
            continue
        result = await session.execute(
            sa.update(sealed.table).where(row_id == current_id, value == old).values({value: new})
        )
        count.resealed += result.rowcount  # type: ignore[attr-defined]
    return rows[-1][0] if rows else None


async def rotate_column(
    sessionmaker: async_sessionmaker[AsyncSession],
    sealed: SealedColumn,
    cipher: Cipher,
    *,
    batch_size: int = 200,
) -> RotationCount:
    """Re-seal every value of ``sealed`` that is not under ``cipher``'s writing key."""
    count = RotationCount()
    after: uuid.UUID | None = None
    while True:
        async with sessionmaker() as session, session.begin():
            last = await _reseal_batch(session, sealed, cipher, after, batch_size, count)
        if last is None:
            break
        after = last
    async with sessionmaker() as session:
        remaining = await session.scalar(
            sa.select(sa.func.count()).select_from(sealed.table).where(_not_current(sealed, cipher))
        )
    count.remaining = int(remaining or 0) - count.unreadable
    return count
