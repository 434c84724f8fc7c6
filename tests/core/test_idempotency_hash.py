"""The stored body hash is keyed: a database dump cannot confirm a guessed message."""

from __future__ import annotations

import hashlib
import json

from allyapi.core.http.idempotency import body_hash
from allyapi.core.http.schemas import RequestBody


class Body(RequestBody):
    message: str


def test_body_hash_is_keyed_and_not_a_bare_sha256() -> None:
    body = Body(message="I have been struggling since the reorganisation")
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert body_hash(body, b"k" * 32) != hashlib.sha256(canonical.encode()).hexdigest()
    assert body_hash(body, b"k" * 32) != body_hash(body, b"j" * 32)
    assert body_hash(body, b"k" * 32) == body_hash(Body(message=body.message), b"k" * 32)
