"""Every JWT decision lives here (SPEC §1).

python-jose is used only as a signature/claim primitive. The rules that matter are ours:
- the issuer is read from the unverified claims only to *choose* its key and algorithm list;
  the algorithm is never taken from the token header;
- each issuer has a fixed algorithm family (HS256 for the development issuer, RS256/ES256 for
  identity providers), so HS/RS confusion cannot be expressed;
- ``aud``, ``iss``, ``exp``, ``iat``, ``sub`` and ``org`` are required, checked by us (python-jose
  does not reject a token without ``aud`` even when an audience is passed);
- ``roles`` must be a list of known roles; token size and claim lengths are bounded;
- a header that names a key source (``jku``, ``x5u``, ``jwk``, ``x5c``) or a critical extension
  (``crit``) is refused outright: keys come from configuration only, never from the token.
Every failure is the same ``Unauthorized`` with a generic detail: no claim value is echoed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from jose import jwt

from allyapi.core.errors import Unauthorized
from allyapi.core.settings import Settings

KNOWN_ROLES = frozenset({"employee", "coordinator", "analyst", "integration"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "org", "exp", "iat")
MAX_TOKEN_BYTES = 8192
MAX_CLAIM_CHARS = 256
DEV_ALGORITHMS = ["HS256"]
# RFC 7515: keys named by the token itself (attacker-controlled) and extensions we do not
# implement (``crit`` must then be rejected). ``kid`` and ``x5t`` only pick among our own keys.
REFUSED_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})


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

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def __repr__(self) -> str:  # keeps sub and name out of any accidental log or traceback
        return f"Principal(org={self.org!r}, roles={sorted(self.roles)!r})"


@dataclass(frozen=True)
class Issuer:
    name: str
    algorithms: list[str]
    key: Any = field(repr=False)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.issuers: dict[str, Issuer] = {}
        if settings.jwt_secret:
            self.issuers[settings.jwt_issuer] = Issuer(
                settings.jwt_issuer, DEV_ALGORITHMS, settings.jwt_secret
            )
        for oidc in settings.oidc_issuers:
            if oidc.issuer in self.issuers:
                # One name, one key family: a shared name would let one issuer's rules apply
                # to the other's tokens.
                raise ValueError(f"issuer configured twice: {oidc.issuer}")
            if oidc.public_key:
                self.issuers[oidc.issuer] = Issuer(
                    oidc.issuer, list(oidc.algorithms), oidc.public_key
                )

    def verify(self, token: str) -> Principal:
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
        try:
            claims = jwt.decode(
                token,
                issuer.key,
                algorithms=issuer.algorithms,
                audience=self.audience,
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
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        for name in REQUIRED_CLAIMS:
            if name not in claims:
                raise Unauthorized("invalid token")
        aud = claims["aud"]
        audiences = aud if isinstance(aud, list) else [aud]
        if self.audience not in audiences:
            raise Unauthorized("invalid token")
        now = time.time()
        for name in ("exp", "iat"):
            if not isinstance(claims[name], int | float) or isinstance(claims[name], bool):
                raise Unauthorized("invalid token")
        if claims["exp"] + self.leeway < now or claims["iat"] - self.leeway > now:
            raise Unauthorized("invalid token")
        sub, org = claims["sub"], claims["org"]
        if not _short_text(sub) or not _short_text(org):
            raise Unauthorized("invalid token")
        roles = claims.get("roles", [])
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
        )


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CLAIM_CHARS


def _optional_text(value: Any) -> str | None:
    return value if _short_text(value) else None


def _country(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isalpha():
        return value.upper()
    return None


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
    """A development token from the HS256 issuer (``allyapi token``, tests, the demo)."""
    if not settings.jwt_secret:
        raise RuntimeError("no development JWT secret configured")
    unknown = set(roles) - KNOWN_ROLES
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
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
