"""Keyed, non-reversible references to people (P1).

The key lives in configuration, never in the database, so a database dump alone cannot
link a reference back to a person. Each purpose has its own prefix so an ally's profile
reference never equals the same person's requester reference.
"""

from __future__ import annotations

import hashlib
import hmac


def requester_ref(key: bytes, org: str, sub: str) -> str:
    """SPEC P1: HMAC-SHA256(pseudonym_key, org + ":" + sub)."""
    return hmac.new(key, f"{org}:{sub}".encode(), hashlib.sha256).hexdigest()


def subject_ref(key: bytes, purpose: str, org: str, sub: str) -> str:
    """A reference for another purpose (``ally``, ``feedback``, ``rate``...)."""
    return hmac.new(key, f"{purpose}|{org}:{sub}".encode(), hashlib.sha256).hexdigest()
