"""Keys of an identity provider, from its JWKS URL, cached in the verifier.

- fetched with httpx, asynchronously, so a fetch never blocks the event loop; a request waits
  for a fetch only when the key it needs is not cached;
- refreshed when a token names an unknown ``kid`` (key rotation), or when the cache is older
  than ``MAX_AGE``, but **at most once per ``MIN_REFRESH_INTERVAL``** whatever tokens arrive,
  so forged kids cannot turn the API into a request amplifier against the identity provider;
  concurrent requests share one fetch (a lock, re-checked after it is taken);
- a failed fetch keeps the keys already known (an IdP hiccup does not log everybody out);
- only public RSA and EC signing keys are kept (``use`` absent or ``sig``), at most
  ``MAX_KEYS``, from a response of at most ``MAX_BYTES``; redirects are not followed;
- the URL comes from configuration only: a token's ``jku``/``x5u`` is refused before this is
  reached (core/auth/tokens.py), never followed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

logger = logging.getLogger("allyapi.auth")

MIN_REFRESH_INTERVAL = 60.0
MAX_AGE = 3600.0
FETCH_TIMEOUT = 5.0
MAX_BYTES = 256 * 1024
MAX_KEYS = 50
KEY_ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}  # the one algorithm each key type may verify
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


class JwksCache:
    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.clock = clock
        self.keys: dict[str, dict[str, Any]] = {}
        self.fetched_at: float | None = None
        self.attempted_at: float | None = None
        self.fetches = 0
        self._lock = asyncio.Lock()

    def cached(self, kid: str | None) -> dict[str, Any] | None:
        """The key for ``kid`` if it is cached (a token without kid: the only key, if one)."""
        if kid is None:
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    def _may_refresh(self) -> bool:
        return self.attempted_at is None or self.clock() - self.attempted_at >= MIN_REFRESH_INTERVAL

    def _stale(self) -> bool:
        return self.fetched_at is None or self.clock() - self.fetched_at >= MAX_AGE

    async def key_for(self, kid: str | None) -> dict[str, Any] | None:
        key = self.cached(kid)
        if key is not None and (not self._stale() or not self._may_refresh()):
            return key
        # No key yet: wait for a fetch in flight (the lock) rather than fail while it runs.
        async with self._lock:
            # Another request may have refreshed while we waited for the lock.
            key = self.cached(kid)
            if (key is None or self._stale()) and self._may_refresh():
                await self.refresh()
        return self.cached(kid)

    async def refresh(self) -> None:
        self.attempted_at = self.clock()
        self.fetches += 1
        try:
            keys = await self._fetch()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("JWKS fetch failed for %s: %s", self.url, type(exc).__name__)
            return
        self.keys = keys
        self.fetched_at = self.clock()

    async def _fetch(self) -> dict[str, dict[str, Any]]:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", self.url, headers={"accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"JWKS answered {response.status_code}")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise ValueError("JWKS document too large")
        return parse_jwks(json.loads(body))


def parse_jwks(document: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, dict[str, Any]] = {}
    for index, key in enumerate(document["keys"][:MAX_KEYS]):
        if not isinstance(key, dict) or key.get("kty") not in KEY_ALGORITHMS:
            continue  # symmetric ("oct") and unknown key types are never trusted
        if PRIVATE_MEMBERS.intersection(key) or key.get("use", "sig") != "sig":
            continue
        if "alg" in key and key["alg"] != KEY_ALGORITHMS[key["kty"]]:
            continue
        kid = key.get("kid")
        keys[kid if isinstance(kid, str) else f"#{index}"] = key
    return keys
