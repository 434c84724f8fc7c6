"""Field encryption at rest (P4): AES-256-GCM under a key ring with key ids.

A sealed value is ``<key id>.<base64url(nonce || ciphertext+tag)>``. The first key of
``ALLYAPI_DATA_KEYS`` writes; every key reads, so rotation is "put the new key first, then
run ``allyapi rotate-keys``". Each value is bound to where it lives by the associated data
(``table:row id:field``): a ciphertext copied into another row or column does not decrypt.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class DecryptionError(Exception):
    """A sealed value that no configured key opens (wrong key, tampering, wrong place)."""


class UnknownDataKey(DecryptionError):
    """Sealed under a key id this process does not hold: during a key rotation, a replica
    that has not received the new key ring yet. Transient (a 503, core/errors.py), unlike
    a value that does not open under a key we hold (tampering, a value moved between rows)."""


class Cipher:
    def __init__(self, ring: list[tuple[str, bytes]]) -> None:
        if not ring:
            raise ValueError("at least one data key is required")
        self.write_key_id = ring[0][0]
        self._keys = {key_id: AESGCM(key) for key_id, key in ring}
        self._writer = self._keys[self.write_key_id]

    def seal(self, plaintext: str, aad: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._writer.encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{self.write_key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, value: str, aad: str) -> str:
        key_id, _, encoded = value.partition(".")
        aead = self._keys.get(key_id)
        if aead is None:
            raise UnknownDataKey("no key with this id is configured")
        try:
            raw = base64.urlsafe_b64decode(encoded)
            plaintext = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode())
        except (InvalidTag, ValueError) as error:
            raise DecryptionError("sealed value does not open") from error
        return plaintext.decode()

    def seal_optional(self, plaintext: str | None, aad: str) -> str | None:
        return None if plaintext is None else self.seal(plaintext, aad)

    def open_optional(self, value: str | None, aad: str) -> str | None:
        return None if value is None else self.open(value, aad)

    def is_current(self, value: str) -> bool:
        """Sealed under the writing key (``rotate-keys`` re-seals the others)."""
        return value.partition(".")[0] == self.write_key_id


def aad_for(table: str, row_id: object, field: str) -> str:
    return f"{table}:{row_id}:{field}"
