"""Keyed, non-reversible references to people (docs/privacy.md, P1), bound to the issuer that
vouched for them.

The key lives in configuration, never in the database, so a database dump alone cannot
link a reference back to a person. Each purpose has its own label so an ally's profile
reference never equals the same person's requester reference.

A person is an org, a ``sub`` *and the issuer that signed it* (docs/identity.md): the same
``sub`` at two identity providers is two people. References take one of two forms:

- the *bound* form, ``HMAC(key, "v2" NUL purpose NUL issuer NUL org NUL sub)``, for every
  issuer but one;
- the *legacy* form, ``HMAC(key, org:sub)`` for requesters and ``HMAC(key, purpose|org:sub)``
  for the other purposes, which references had before they included the issuer. Exactly one
  issuer keeps it (``Settings.legacy_issuer``), so an upgraded install's people keep their
  requests and profiles; its ``issuer`` is ``None`` here.

The two forms never meet: org, sub, issuer and purpose hold no NUL (checked when a token is
verified and when configuration loads), so a bound input always holds a NUL and a legacy
input never does; within the bound form, NUL-separated NUL-free fields decode one way only.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

BOUND_FORM = "v2"
REQUESTER = "requester"


@dataclass(frozen=True)
class Subject:
    """Whose reference: ``issuer`` None is the legacy issuer (see above). Never logged."""

    org: str
    sub: str
    issuer: str | None

    def __repr__(self) -> str:
        return f"Subject(org={self.org!r})"


def _digest(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _bound(purpose: str, who: Subject) -> str:
    assert who.issuer is not None
    return "\x00".join((BOUND_FORM, purpose, who.issuer, who.org, who.sub))


def requester_ref(key: bytes, who: Subject) -> str:
    """The reference a contact request stores for its requester (P1)."""
    if who.issuer is None:
        return _digest(key, f"{who.org}:{who.sub}")
    return _digest(key, _bound(REQUESTER, who))


def subject_ref(key: bytes, purpose: str, who: Subject) -> str:
    """A reference for another purpose (``ally``, ``idem``, ``rate``, ``feedback:<week>``)."""
    if who.issuer is None:
        return _digest(key, f"{purpose}|{who.org}:{who.sub}")
    return _digest(key, _bound(purpose, who))
