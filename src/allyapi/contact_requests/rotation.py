"""``allyapi rotate-keys`` for contact requests: give requests sealed the older way their own key.

Requests written before per-request data keys existed hold values sealed directly under the
configured keys (``<key id>.…``). They stay readable, but their erasure could not shred
them: a copy of the ciphertext opens with the configured key. This pass gives each such
request a data key (contact_requests/sealing.py) and re-seals its message, contact detail,
alias and thread bodies with it, so from then on erasure and purge shred them like any other.

Like the re-sealing of the other columns (core/privacy/rotation.py) it runs beside live
traffic: short batches, each its own transaction; the request rows are taken ``FOR UPDATE SKIP
LOCKED`` (a request someone is writing to or erasing right now waits for the next run), and
holding the row keeps a thread post or an erasure out while its values change. The statements
are in contact_requests/rotation_repository.py.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.contact_requests.rotation_repository import (
    claim_legacy_requests,
    count_legacy_values,
    legacy_messages,
    sealed_values,
    update_message_body,
    update_sealed_values,
)
from allyapi.contact_requests.sealing import RequestKeys
from allyapi.core.privacy.crypto import DATA_KEY_PREFIX, Cipher, DataKey, DecryptionError, aad_for
from allyapi.core.privacy.rotation import RotationCount

LABEL = "contact requests and threads (per-request keys)"


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
        values = await sealed_values(self.session, request_id)
        changes = {}
        for name, old in values.items():
            if old is not None and not old.startswith(DATA_KEY_PREFIX):
                new = self._reseal(old, aad_for("contact_requests", request_id, name), key)
                if new is not None:
                    changes[name] = new
        if changes:
            await update_sealed_values(self.session, request_id, changes)
            self.count.resealed += len(changes)
        await self._messages(request_id, key)

    async def _messages(self, request_id: uuid.UUID, key: DataKey) -> None:
        for message_id, old in await legacy_messages(self.session, request_id):
            new = self._reseal(old, aad_for("contact_messages", message_id, "body"), key)
            if new is not None:
                await update_message_body(self.session, message_id, new)
                self.count.resealed += 1


async def _convert_batch(
    session: AsyncSession,
    ring: Cipher,
    after: uuid.UUID | None,
    batch_size: int,
    count: RotationCount,
) -> uuid.UUID | None:
    """Convert up to ``batch_size`` requests after ``after`` (id order); the last id or None."""
    claimed = await claim_legacy_requests(session, after, batch_size)
    converter = _Converter(session, ring, count)
    for request_id, org_id in claimed:
        await converter.request(request_id, org_id)
    return claimed[-1][0] if claimed else None


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
        remaining = await count_legacy_values(session)
    count.remaining = remaining - count.unreadable
    return count
