"""The stored body hash is keyed: a database dump cannot confirm a guessed message."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from allyapi.core.http.idempotency import body_hash, canonical_json
from allyapi.core.http.schemas import RequestBody


class Body(RequestBody):
    message: str


def test_body_hash_is_keyed_and_not_a_bare_sha256() -> None:
    body = Body(message="I have been struggling since the reorganisation")
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert body_hash(body, b"k" * 32) != hashlib.sha256(canonical.encode()).hexdigest()
    assert body_hash(body, b"k" * 32) != body_hash(body, b"j" * 32)
    assert body_hash(body, b"k" * 32) == body_hash(Body(message=body.message), b"k" * 32)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(st.characters(exclude_categories=["Cs"])),  # validation refuses lone surrogates
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(JSON_VALUES)
@settings(max_examples=300, deadline=None)
def test_the_canonical_form_is_byte_for_byte_what_it_was(value: object) -> None:
    """Hashes stored before orjson wrote the canonical form still match a replay after it."""
    before = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == before.encode()
