"""Field encryption at rest: AES-256-GCM under a key ring with key ids, and per-record
data keys for crypto-shredding.

Two kinds of sealed value, told apart by their first characters:

- ``<key id>.<base64url(nonce || ciphertext+tag)>``: sealed directly under a key of the ring
  (``ALLYAPI_DATA_KEYS``; the first key writes, every key reads). Key ids never contain
  ``:``, and base64url has no ``:`` either.
- ``rk1:<base64url(nonce || ciphertext+tag)>``: sealed under a record's own random data key
  (:class:`DataKey`). The data key itself is stored sealed under the ring (the first kind),
  in a row of its own. Destroying that row destroys every value sealed with it at once,
  wherever copies of the ciphertext still lie (crypto-shredding); rotating the ring re-seals
  only the small data keys (docs/request-lifecycle.md).

Each value is bound to where it lives by the associated data (``table:row id:field``): a
ciphertext copied into another row or column does not decrypt.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
DATA_KEY_BYTES = 32
DATA_KEY_PREFIX = "rk1:"


class DecryptionError(Exception):
    """A sealed value that no configured key opens (wrong key, tampering, wrong place)."""


class UnknownDataKey(DecryptionError):
    """Sealed under a key id this process does not hold: during a key rotation, a replica
    that has not received the new key ring yet. Transient (a 503, core/http/errors.py), unlike
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

    def seal_data_key(self, key: DataKey, aad: str) -> str:
        """A record's data key, sealed under the ring's writing key for storage."""
        return self.seal(base64.urlsafe_b64encode(key.material).decode(), aad)

    def open_data_key(self, sealed: str, aad: str) -> DataKey:
        try:
            material = base64.urlsafe_b64decode(self.open(sealed, aad))
        except ValueError as error:
            raise DecryptionError("sealed data key is malformed") from error
        return DataKey(material)


class DataKey:
    """One record's own AES-256-GCM key: values sealed with it read ``rk1:<base64url>``."""

    def __init__(self, material: bytes) -> None:
        if len(material) != DATA_KEY_BYTES:
            raise DecryptionError("a data key has 32 bytes")
        self.material = material
        self._aead = AESGCM(material)

    @classmethod
    def generate(cls) -> DataKey:
        return cls(secrets.token_bytes(DATA_KEY_BYTES))

    def seal(self, plaintext: str, aad: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), aad.encode())
        return DATA_KEY_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, value: str, aad: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(value.removeprefix(DATA_KEY_PREFIX))
            plaintext = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode())
        except (InvalidTag, ValueError) as error:
            raise DecryptionError("sealed value does not open") from error
        return plaintext.decode()

    def seal_optional(self, plaintext: str | None, aad: str) -> str | None:
        return None if plaintext is None else self.seal(plaintext, aad)

    def __repr__(self) -> str:
        return "DataKey(...)"


def under_data_key(value: str) -> bool:
    """Sealed with a record's data key (else: directly under the ring, the older way)."""
    return value.startswith(DATA_KEY_PREFIX)


def open_record_value(value: str, aad: str, ring: Cipher, key: DataKey | None) -> str:
    """Open a value of a record that has (or may have) its own data key.

    Values sealed before data keys existed are sealed under the ring and stay readable
    (``allyapi rotate-keys`` converts them). A data-key value whose key is gone (erased,
    purged) never opens: that is the point.
    """
    if not under_data_key(value):
        return ring.open(value, aad)
    if key is None:
        raise DecryptionError("the data key of this record is gone")
    return key.open(value, aad)


def aad_for(table: str, row_id: object, field: str) -> str:
    return f"{table}:{row_id}:{field}"
