"""Every JWT decision lives here (docs/identity.md).

python-jose is used only as a signature/claim primitive. The rules that matter are ours:
- the issuer is read from the unverified claims only to *choose* its key and algorithm list;
  the algorithm is never taken from the token header;
- each issuer has a fixed algorithm family (HS256 for the development issuer, RS256/ES256 for
  identity providers), so HS/RS confusion cannot be expressed;
- ``aud``, ``iss``, ``exp``, ``iat``, ``sub`` and ``org`` are required, checked by us (python-jose
  does not reject a token without ``aud`` even when an audience is passed);
- an issuer speaks only for the orgs configured for it (``orgs``, ``ALLYAPI_JWT_ORGS``): a
  token claiming another org is refused, so identity provider B cannot act in A's orgs;
- ``exp - iat`` is at most ``ALLYAPI_JWT_MAX_LIFETIME_SECONDS``; ``exp``, ``iat`` (and
  ``nbf``) must be finite, non-negative JSON numbers (not booleans), and any odd value is a
  plain refusal, never an overflow;
- ``org`` is 1-128 and ``sub`` 1-256 printable characters (no NUL, no control characters),
  checked here before any database call: the org column holds 128, PostgreSQL text no NUL;
- ``roles`` must be a list of known roles; token size and claim lengths are bounded;
- a header that names a key source (``jku``, ``x5u``, ``jwk``, ``x5c``) or a critical extension
  (``crit``) is refused outright: keys come from configuration only, never from the token.
Every failure is the same ``Unauthorized`` with a generic detail: no claim value is echoed.

A token that verified is remembered (``VerifiedCache``) for at most ``CACHE_SECONDS`` and never
past its ``exp``: the same bearer token on the next request skips parsing and the signature
check (a fifth of the directory's CPU). Only successes are cached, keyed by a hash of
the exact token string, so any altered token is verified afresh; the token names its issuer
(``iss`` is inside the signed part), so one entry belongs to one issuer, and the principal it
holds carries that issuer. A token verified with a JWKS key is verified afresh as soon as a
refresh replaces or retires that key.

The principal carries the issuer for everything keyed by a person (``Principal.subject``):
pseudonyms, rate-limit keys and idempotency scopes all come from core/auth/pseudonym.py, so the
same ``sub`` at two issuers is two people everywhere (docs/identity.md).

Identity providers (``ALLYAPI_OIDC_ISSUERS``) verify with a static PEM or keys from a JWKS
URL (core/auth/jwks.py: cached, fetched asynchronously, refreshed on an unknown ``kid`` at most
once a minute). ``verify_async`` is what requests use (it may fetch keys); ``verify`` uses
cached keys only. Each issuer maps its own claims: which claim is the org, which lists the
roles or groups, and how groups translate to our roles.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jose import jwt

from allyapi.core.auth.jwks import KEY_ALGORITHMS, JwksCache
from allyapi.core.auth.pseudonym import Subject
from allyapi.core.db.models import ORG_ID_MAX
from allyapi.core.http.errors import Unauthorized
from allyapi.core.settings import Settings, check_issuers, printable

KNOWN_ROLES = frozenset({"employee", "coordinator", "analyst", "integration"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat")  # + the issuer's org claim
MAX_GROUPS = 500  # a groups claim may list many directory groups; only mapped ones count
MAX_TOKEN_BYTES = 8192
MAX_CLAIM_CHARS = 256
DEV_ALGORITHMS = ["HS256"]
# RFC 7515: keys named by the token itself (attacker-controlled) and extensions we do not
# implement (``crit`` must then be rejected). ``kid`` and ``x5t`` only pick among our own keys.
REFUSED_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
CACHE_SECONDS = 60.0
CACHE_SIZE = 4096


@dataclass(frozen=True)
class Principal:
    """The verified caller. ``sub`` is held in memory only, never stored or logged."""

    sub: str
    org: str
    roles: frozenset[str]
    name: str | None = None
    country: str | None = None
    department: str | None = None
    locale: str | None = None
    # exp + leeway: when this principal stops being valid (the verified-token cache's limit).
    expires_at: float = 0.0
    # The ``iss`` that signed the token, and the issuer its pseudonyms are bound to (None for
    # the legacy issuer: core/auth/pseudonym.py).
    issuer: str = ""
    pseudonym_issuer: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def subject(self) -> Subject:
        """The caller as pseudonyms see them: org, sub and issuer."""
        return Subject(self.org, self.sub, self.pseudonym_issuer)

    def other(self, sub: str) -> Subject:
        """Someone an integration names by ``sub`` (an LMS row): a person at its own issuer."""
        return Subject(self.org, sub, self.pseudonym_issuer)

    def __repr__(self) -> str:  # keeps sub and name out of any accidental log or traceback
        return f"Principal(org={self.org!r}, roles={sorted(self.roles)!r})"


@dataclass(frozen=True)
class Issuer:
    name: str
    algorithms: list[str]
    key: Any = field(repr=False)
    jwks: JwksCache | None = None
    audience: str | None = None
    org_claim: str = "org"
    roles_claim: str = "roles"
    role_map: Mapping[str, str] | None = None
    orgs: frozenset[str] | None = None  # None: any org (one issuer alone)
    legacy: bool = False  # keeps the pre-binding pseudonym form (core/auth/pseudonym.py)

    @property
    def pseudonym_issuer(self) -> str | None:
        return None if self.legacy else self.name


# The JWKS key a cached token was verified with: (the issuer's key set, kid, key).
KeySource = tuple[JwksCache, str | None, dict[str, Any]]


class VerifiedCache:
    """Tokens that verified: sha256(token) → (usable until, principal, key); LRU, bounded.

    A token verified with a JWKS key is served from here only while that very key is still
    the issuer's current one: a refresh that retires or replaces it (rotation) sends the
    token through full verification again, at once.
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.entries: OrderedDict[bytes, tuple[float, Principal, KeySource | None]] = OrderedDict()

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes, now: float) -> Principal | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        until, principal, source = entry
        if now >= until or (source is not None and source[0].cached(source[1]) is not source[2]):
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return principal

    def put(
        self, key: bytes, principal: Principal, until: float, source: KeySource | None = None
    ) -> None:
        self.entries[key] = (until, principal, source)
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        # Settings validate this on load; a copy made in code skips validation, so again here.
        check_issuers(settings)
        self.verified = VerifiedCache()
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.max_lifetime = settings.jwt_max_lifetime_seconds
        orgs, legacy = settings.issuer_orgs(), settings.legacy_issuer
        self.issuers: dict[str, Issuer] = {}
        if settings.jwt_secret:
            name = settings.jwt_issuer
            self.issuers[name] = Issuer(
                name, DEV_ALGORITHMS, settings.jwt_secret, orgs=orgs[name], legacy=name == legacy
            )
        for oidc in settings.oidc_issuers:
            self.issuers[oidc.issuer] = Issuer(
                oidc.issuer,
                list(oidc.algorithms),
                oidc.public_key,
                jwks=JwksCache(oidc.jwks_url) if oidc.jwks_url else None,
                audience=oidc.audience,
                org_claim=oidc.org_claim,
                roles_claim=oidc.roles_claim,
                role_map=oidc.role_map,
                orgs=orgs[oidc.issuer],
                legacy=oidc.issuer == legacy,
            )

    def pseudonym_issuers(self, org: str) -> list[str | None]:
        """The pseudonym issuer of every issuer that may speak for ``org`` (roster sync)."""
        return [
            issuer.pseudonym_issuer
            for issuer in self.issuers.values()
            if issuer.orgs is None or org in issuer.orgs
        ]

    def verify(self, token: str) -> Principal:
        """Cached keys only (the CLI, tests); requests go through ``verify_async``."""
        header, issuer = self._select(token)
        if issuer.jwks is None:
            return self._decode(token, issuer, issuer.key, issuer.algorithms)
        return self._decode_jwk(token, issuer, issuer.jwks.cached(_kid(header)))

    async def verify_async(self, token: str) -> Principal:
        key, now = VerifiedCache.key(token), time.time()
        cached = self.verified.get(key, now)
        if cached is not None:
            return cached
        header, issuer = self._select(token)
        source: KeySource | None = None
        if issuer.jwks is None:
            principal = self._decode(token, issuer, issuer.key, issuer.algorithms)
        else:
            kid = _kid(header)
            jwk = await issuer.jwks.key_for(kid)
            principal = self._decode_jwk(token, issuer, jwk)
            assert jwk is not None  # _decode_jwk refuses a missing key
            source = (issuer.jwks, kid, jwk)
        until = min(now + CACHE_SECONDS, principal.expires_at)
        self.verified.put(key, principal, until, source)
        return principal

    def _decode_jwk(self, token: str, issuer: Issuer, jwk: dict[str, Any] | None) -> Principal:
        if jwk is None:
            raise Unauthorized("invalid token")
        # A key verifies with its own type's algorithm only, among the issuer's.
        allowed = [alg for alg in issuer.algorithms if alg == KEY_ALGORITHMS[jwk["kty"]]]
        if not allowed:
            raise Unauthorized("invalid token")
        return self._decode(token, issuer, jwk, allowed)

    def _select(self, token: str) -> tuple[dict[str, Any], Issuer]:
        """The token's issuer, from its unverified claims; refuses key-source headers."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("invalid token")
        # Any failure to parse or verify an untrusted token is a 401, whatever the library
        # raises (JOSEError, ValueError, OverflowError, RecursionError...): never a 500.
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.get_unverified_claims(token)
        except Exception:
            raise Unauthorized("invalid token") from None
        if not isinstance(header, dict) or REFUSED_HEADERS.intersection(header):
            raise Unauthorized("invalid token")
        iss = unverified.get("iss") if isinstance(unverified, dict) else None
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthorized("invalid token")
        return header, issuer

    def _decode(self, token: str, issuer: Issuer, key: Any, algorithms: list[str]) -> Principal:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=issuer.audience or self.audience,
                issuer=issuer.name,
                options={
                    "require_aud": True,
                    "require_iat": True,
                    "require_exp": True,
                    "require_iss": True,
                    "require_sub": True,
                    "leeway": self.leeway,
                },
            )
        except Exception:
            raise Unauthorized("invalid token") from None
        return self._principal(claims, issuer)

    def _principal(self, claims: dict[str, Any], issuer: Issuer) -> Principal:
        for name in (*REQUIRED_CLAIMS, issuer.org_claim):
            if name not in claims:
                raise Unauthorized("invalid token")
        aud = claims["aud"]
        audiences = aud if isinstance(aud, list) else [aud]
        if (issuer.audience or self.audience) not in audiences:
            raise Unauthorized("invalid token")
        self._check_times(claims)
        sub, org = claims["sub"], claims[issuer.org_claim]
        if not printable(sub, MAX_CLAIM_CHARS) or not printable(org, ORG_ID_MAX):
            raise Unauthorized("invalid token")
        if issuer.orgs is not None and org not in issuer.orgs:
            raise Unauthorized("invalid token")  # this issuer does not speak for that org
        roles = _mapped_roles(claims.get(issuer.roles_claim, []), issuer.role_map)
        if not isinstance(roles, list) or not roles or len(roles) > len(KNOWN_ROLES):
            raise Unauthorized("invalid token")
        if not all(isinstance(role, str) and role in KNOWN_ROLES for role in roles):
            raise Unauthorized("invalid token")
        return Principal(
            sub=sub,
            org=org,
            roles=frozenset(roles),
            name=_optional_text(claims.get("name")),
            country=_country(claims.get("country")),
            department=_optional_text(claims.get("department")),
            locale=_optional_text(claims.get("locale")),
            expires_at=float(claims["exp"]) + self.leeway,
            issuer=issuer.name,
            pseudonym_issuer=issuer.pseudonym_issuer,
        )

    def _check_times(self, claims: dict[str, Any]) -> None:
        """``exp``/``iat`` (``nbf`` if present) are timestamps (``_timestamp``); ``exp`` not
        past, ``iat`` and ``nbf`` not ahead (with leeway), ``exp - iat`` within the maximum.
        Python compares ints of any size and floats exactly, so 1e308, -1e308 or a 400-digit
        integer is a plain refusal; nothing here converts or overflows."""
        names = ("exp", "iat", "nbf") if "nbf" in claims else ("exp", "iat")
        if not all(_timestamp(claims[name]) for name in names):
            raise Unauthorized("invalid token")
        now = time.time()
        exp, iat = claims["exp"], claims["iat"]
        if exp + self.leeway < now or iat - self.leeway > now:
            raise Unauthorized("invalid token")
        if "nbf" in claims and claims["nbf"] - self.leeway > now:
            raise Unauthorized("invalid token")
        if exp - iat > self.max_lifetime or exp < iat:
            raise Unauthorized("invalid token")


def _timestamp(value: Any) -> bool:
    """Seconds since 1970 as a finite, non-negative JSON number (not a boolean; ``NaN`` and
    ``Infinity`` parse in Python's JSON, never in a real identity provider's)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value >= 0 and (not isinstance(value, float) or math.isfinite(value))


def _kid(header: dict[str, Any]) -> str | None:
    kid = header.get("kid")
    return kid if printable(kid, MAX_CLAIM_CHARS) else None


def _mapped_roles(value: Any, role_map: Mapping[str, str] | None) -> Any:
    """Without a map: the claim as is (checked by the caller). With one: the known roles its
    groups map to; unmapped groups are ignored, so an empty result is refused."""
    if role_map is None:
        return value
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_GROUPS:
        return None
    return sorted({role_map[g] for g in value if isinstance(g, str) and g in role_map})


def _optional_text(value: Any) -> str | None:
    """An informational claim (name, department, locale): kept only if printable and short,
    since it may reach a query (department) or a response (name)."""
    return value if printable(value, MAX_CLAIM_CHARS) else None


def _country(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isalpha():
        return value.upper()
    return None


def dev_subject(settings: Settings, org: str, sub: str) -> Subject:
    """A person of the HS256 issuer as pseudonyms see them (the demo seeds their profiles)."""
    issuer = settings.jwt_issuer
    return Subject(org, sub, None if settings.legacy_issuer == issuer else issuer)


def mint_dev_token(
    settings: Settings,
    *,
    sub: str,
    org: str,
    roles: list[str],
    ttl_seconds: int = 8 * 3600,
    claims: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    """A development token from the HS256 issuer (``allyapi token``, tests, the demo).

    Refuses what the verifier would refuse anyway: a lifetime over the maximum, an org the
    issuer does not speak for (``claims`` may still override anything, for attack tests).
    """
    if not settings.jwt_secret:
        raise RuntimeError("no development JWT secret configured")
    unknown = set(roles) - KNOWN_ROLES
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    if not 0 < ttl_seconds <= settings.jwt_max_lifetime_seconds:
        raise ValueError(
            f"the lifetime must be 1..{settings.jwt_max_lifetime_seconds} seconds "
            "(ALLYAPI_JWT_MAX_LIFETIME_SECONDS)"
        )
    if settings.jwt_orgs is not None and org not in settings.jwt_orgs:
        raise ValueError("the HS256 issuer does not speak for this org (ALLYAPI_JWT_ORGS)")
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "org": org,
        "roles": roles,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    optional = {**(claims or {}), **extra}
    payload.update({key: value for key, value in optional.items() if value is not None})
    token: str = jwt.encode(payload, settings.jwt_secret, algorithm="HS256")
    return token
