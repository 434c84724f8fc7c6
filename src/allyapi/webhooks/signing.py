"""Standard Webhooks signing (https://www.standardwebhooks.com/).

The secret is ``whsec_`` + base64 of 32 random bytes; the HMAC key is those bytes. A message
is signed as ``v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>`` and sent with the
headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``.
Receivers should reject timestamps more than a few minutes away from their clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("not a webhook secret")
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": "allyapi-webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(secret: str, message_id: str, timestamp: str, body: str, signature_header: str) -> bool:
    """What a receiver does (used by our tests and shown in docs/integration-guide.md).

    The header may hold several space-separated signatures (during a secret rotation).
    """
    expected = sign(secret, message_id, int(timestamp), body)
    return any(
        hmac.compare_digest(expected, candidate) for candidate in signature_header.split(" ")
    )
