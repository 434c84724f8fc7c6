"""``allyapi rotate-keys`` for contact requests: give requests sealed the older way their own key.

Requests written before per-request data keys existed hold values sealed directly under the
configured keys (``<key id>.…``). They stay readable, but their erasure could not shred
them: a copy of the ciphertext opens with the configured key. This pass gives each such
request a data key (contact_requests/sealing.py) and re-seals its message, contact detail,
alias and thread bodies with it, so from then on erasure and purge shred them like any other.

Like the re-sealing of the other columns (core/privacy/rotation.py) it runs beside live traffic: short
batches, each its own transaction; the request rows are taken ``FOR UPDATE SKIP LOCKED`` (a
request someone is writing to or erasing right now waits for the next run), and holding the
row keeps a thread post or an erasure out while its values change.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from allyapi.contact_requests.models import ContactMessage, ContactRequest
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.contact_requests.sealing import RequestKeys
from allyapi.core.db.models import table_of
from allyapi.core.privacy.crypto import DATA_KEY_PREFIX, Cipher, DataKey, DecryptionError, aad_for
from allyapi.core.privacy.rotation import RotationCount

REQUESTS = table_of(ContactRequest)
MESSAGES = table_of(ContactMessage)
FIELDS = ("message", "contact_detail", "alias")
LABEL = "contact requests and threads (per-request keys)"


def _legacy(column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """Sealed directly under the configured keys (substr, not LIKE: no wildcards)."""
    prefix = sa.func.substr(column, 1, len(DATA_KEY_PREFIX))
    return sa.and_(column.is_not(None), prefix != DATA_KEY_PREFIX)


def _has_legacy_values() -> sa.ColumnElement[bool]:
    legacy_message = (
        sa.select(sa.literal(1))
        .where(MESSAGES.c.request_id == REQUESTS.c.id, _legacy(MESSAGES.c.body_sealed))
        .exists()
    )
    return sa.or_(*(_legacy(REQUESTS.c[f"{name}_sealed"]) for name in FIELDS), legacy_message)


class _Converter:
    def __init__(self, session: AsyncSession, ring: Cipher, count: RotationCount) -> None:
        self.session = session
        self.ring = ring
        self.count = count
        self.keys = RequestKeys(ContactRequestRepository(session), ring)

    def _reseal(self, old: str, aad: str, key: DataKey) -> str | None:
        try:
            return key.seal(self.ring.open(old, aad), aad)
        except DecryptionError:
            self.count.unreadable += 1  # opened by no configured key: left as it is
            return None

    async def request(self, request_id: uuid.UUID, org_id: str) -> None:
        key = await self.keys.for_writing(org_id, request_id)
        row = (
            await self.session.execute(
                sa.select(*(REQUESTS.c[f"{name}_sealed"] for name in FIELDS)).where(
                    REQUESTS.c.id == request_id
                )
            )
        ).one()
        changes = {}
        for name, old in zip(FIELDS, row, strict=True):
            if old is not None and not old.startswith(DATA_KEY_PREFIX):
                new = self._reseal(old, aad_for("contact_requests", request_id, name), key)
                if new is not None:
                    changes[f"{name}_sealed"] = new
        if changes:
            await self.session.execute(
                sa.update(REQUESTS).where(REQUESTS.c.id == request_id).values(changes)
            )
            self.count.resealed += len(changes)
        await self._messages(request_id, key)

    async def _messages(self, request_id: uuid.UUID, key: DataKey) -> None:
        rows = await self.session.execute(
            sa.select(MESSAGES.c.id, MESSAGES.c.body_sealed).where(
                MESSAGES.c.request_id == request_id, _legacy(MESSAGES.c.body_sealed)
            )
        )
        for message_id, old in rows.all():
            new = self._reseal(old, aad_for("contact_messages", message_id, "body"), key)
            if new is not None:
                await self.session.execute(
                    sa.update(MESSAGES).where(MESSAGES.c.id == message_id).values(body_sealed=new)
                )
                self.count.resealed += 1


async def _convert_batch(
    session: AsyncSession,
    ring: Cipher,
    after: uuid.UUID | None,
    batch_size: int,
    count: RotationCount,
) -> uuid.UUID | None:
    """Convert up to ``batch_size`` requests after ``after`` (id order); the last id or None."""
    query = sa.select(REQUESTS.c.id, REQUESTS.c.org_id).where(_has_legacy_values())
    if after is not None:
        query = query.where(REQUESTS.c.id > after)
    query = query.order_by(REQUESTS.c.id).limit(batch_size).with_for_update(skip_locked=True)
    rows = (await session.execute(query)).all()
    converter = _Converter(session, ring, count)
    for request_id, org_id in rows:
        await converter.request(request_id, org_id)
    return rows[-1][0] if rows else None


async def convert_legacy_requests(
    sessionmaker: async_sessionmaker[AsyncSession], ring: Cipher, *, batch_size: int = 100
) -> RotationCount:
    """Give every request still sealed the older way its own key; ``remaining`` counts the
    values left the older way (locked by a live request, or unreadable)."""
    count = RotationCount()
    after: uuid.UUID | None = None
    while True:
        async with sessionmaker() as session, session.begin():
            last = await _convert_batch(session, ring, after, batch_size, count)
        if last is None:
            break
        after = last
    async with sessionmaker() as session:
        remaining = 0
        for column in (*(REQUESTS.c[f"{name}_sealed"] for name in FIELDS), MESSAGES.c.body_sealed):
            remaining += int(
                await session.scalar(
                    sa.select(sa.func.count()).select_from(column.table).where(_legacy(column))
                )
                or 0
            )
    count.remaining = remaining - count.unreadable
    return count
