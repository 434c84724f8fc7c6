"""The verified-token cache (core/auth/tokens.py ``VerifiedCache``) may only ever skip work, never a
rule: an expired token, an altered token or an unknown one is verified (and refused) afresh.
"""

from __future__ import annotations

import time

import pytest

from allyapi.core.auth import tokens as auth
from allyapi.core.auth.tokens import TokenVerifier, VerifiedCache, mint_dev_token
from allyapi.core.http.errors import Unauthorized
from allyapi.core.settings import Settings
from tests.helpers import ORG


@pytest.fixture
def verifier(settings: Settings) -> TokenVerifier:
    return TokenVerifier(settings)


def _counting(verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each full verification (parse, pick the issuer, check the signature)."""
    calls: list[str] = []
    select = verifier._select

    def counted(token: str):  # type: ignore[no-untyped-def]
        calls.append(token)
        return select(token)

    monkeypatch.setattr(verifier, "_select", counted)
    return calls


def _clock(monkeypatch: pytest.MonkeyPatch, at: float) -> None:
    monkeypatch.setattr(time, "time", lambda: at)  # the module auth reads the clock from


async def test_a_verified_token_is_not_verified_again(
    verifier: TokenVerifier, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(verifier, monkeypatch)
    token = mint_dev_token(settings, sub="cache-1", org=ORG, roles=["employee"])
    first = await verifier.verify_async(token)
    assert await verifier.verify_async(token) == first
    assert len(calls) == 1


async def test_a_cached_token_that_expired_is_refused(
    verifier: TokenVerifier, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = mint_dev_token(settings, sub="cache-2", org=ORG, roles=["employee"], ttl_seconds=5)
    await verifier.verify_async(token)
    _clock(monkeypatch, time.time() + 5 + settings.jwt_leeway_seconds + 1)
    with pytest.raises(Unauthorized):
        await verifier.verify_async(token)


async def test_an_altered_copy_of_a_cached_token_is_refused(
    verifier: TokenVerifier, settings: Settings
) -> None:
    token = mint_dev_token(settings, sub="cache-3", org=ORG, roles=["employee"])
    await verifier.verify_async(token)
    head, payload, signature = token.split(".")
    altered = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    for forged in (f"{head}.{payload}.{altered}", f"{head}.{payload}.", token + " "):
        with pytest.raises(Unauthorized):
            await verifier.verify_async(forged)


async def test_entries_live_at_most_cache_seconds(
    verifier: TokenVerifier, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(verifier, monkeypatch)
    token = mint_dev_token(settings, sub="cache-4", org=ORG, roles=["employee"])
    await verifier.verify_async(token)
    _clock(monkeypatch, time.time() + auth.CACHE_SECONDS + 1)
    await verifier.verify_async(token)
    assert len(calls) == 2  # verified again, as a fresh token would be


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = VerifiedCache(size=2)
    principal = auth.Principal(sub="s", org=ORG, roles=frozenset({"employee"}))
    keys = [VerifiedCache.key(f"token-{i}") for i in range(3)]
    cache.put(keys[0], principal, until=100)
    cache.put(keys[1], principal, until=100)
    assert cache.get(keys[0], now=0) is principal  # 0 is now the most recently used
    cache.put(keys[2], principal, until=100)
    assert cache.get(keys[1], now=0) is None
    assert cache.get(keys[0], now=0) is principal
    assert len(cache.entries) == 2
