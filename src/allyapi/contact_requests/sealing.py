"""Each contact request's own data key (crypto-shredding; docs/request-lifecycle.md).

A request's message, contact detail, alias and thread bodies are sealed with a random
AES-256-GCM key of its own (``core.crypto.DataKey``). That key is stored sealed under the
configured data keys in ``contact_request_keys``; erasure and the retention purge delete the
row, and with it every way to open those ciphertexts, wherever copies of them lie.

Requests sealed before data keys existed have no key row: their values are sealed under the
configured keys directly and stay readable (``open_record_value``); the first new value
written to one (a thread message) gives it a key, and ``allyapi rotate-keys`` converts the
rest (contact_requests/rotation.py).
"""

from __future__ import annotations

import uuid

from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.core.privacy.crypto import Cipher, DataKey, aad_for

KEYS = "contact_request_keys"


def key_aad(request_id: uuid.UUID) -> str:
    return aad_for(KEYS, request_id, "key")


class RequestKeys:
    def __init__(self, repo: ContactRequestRepository, ring: Cipher) -> None:
        self.repo = repo
        self.ring = ring

    async def create(self, org_id: str, request_id: uuid.UUID) -> DataKey:
        """A new key for a request, stored sealed under the ring's writing key."""
        key = DataKey.generate()
        await self.repo.insert_key(org_id, request_id, self.seal(key, request_id))
        return key

    def seal(self, key: DataKey, request_id: uuid.UUID) -> str:
        return self.ring.seal_data_key(key, key_aad(request_id))

    async def of(self, request_id: uuid.UUID) -> DataKey | None:
        """The request's key; None when it never had one (sealed the older way) or it was
        destroyed (erased, purged). A key sealed under a key id this process does not hold
        raises ``UnknownDataKey`` (a 503: a key rotation is rolling out)."""
        sealed = await self.repo.sealed_key(request_id)
        return None if sealed is None else self.ring.open_data_key(sealed, key_aad(request_id))

    async def for_writing(self, org_id: str, request_id: uuid.UUID) -> DataKey:
        """The key to seal a new value of this request with (the caller holds the request's
        row, so two writers never both create one)."""
        return await self.of(request_id) or await self.create(org_id, request_id)
