"""DNS rebinding: a delivery connects to the addresses its SSRF check vetted, never to a
second lookup of the name (webhooks/ssrf.py ``PinnedBackend``)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.webhooks.deliverer import Deliverer, new_client
from allyapi.webhooks.outbox import enqueue
from allyapi.webhooks.ssrf import PINS, PinnedBackend
from tests.helpers import ORG, TokenFactory
from tests.webhooks.factories import deliveries, subscribe

PUBLIC = "93.184.216.34"  # what the name answers to the check


class Recording(httpcore.AsyncNetworkBackend):
    """Records where connections would go, and refuses them all."""

    def __init__(self, reachable: Iterable[str] = ()) -> None:
        self.attempts: list[tuple[str, int]] = []
        self.reachable = set(reachable)

    async def connect_tcp(self, host: str, port: int, *_: Any, **__: Any) -> Any:
        self.attempts.append((host, port))
        if host in self.reachable:
            return "stream"
        raise httpcore.ConnectError("refused by the test")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_a_delivery_connects_to_the_vetted_address_not_to_a_new_lookup(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await subscribe(client, tokens.integration, url="https://rebind.example/hook")
    await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()

    async def public_once(host: str, port: int, **_: Any) -> list[Any]:
        assert host == "rebind.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]

    # The check sees a public address; any later lookup of the name (httpx's own, in an
    # unpinned client) could be answered with 127.0.0.1 by a rebinding DNS server.
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", public_once)
    network = Recording()
    strict = settings.model_copy(update={"webhook_allow_private": False})
    async with new_client(network) as http:
        assert await Deliverer(database, strict, http).run_once() == 1
    assert network.attempts == [(PUBLIC, 443)]
    [row] = await deliveries(session)
    assert row.last_error == "ConnectError"


async def test_the_backend_only_connects_to_pinned_addresses() -> None:
    network = Recording(reachable={"198.51.100.7", "anywhere.example"})
    backend = PinnedBackend(network)
    assert await backend.connect_tcp("anywhere.example", 80) == "stream"  # type: ignore[comparison-overlap]
    assert network.attempts == [("anywhere.example", 80)]  # no delivery: not pinned

    token = PINS.set({"hooks.example": ("192.0.2.1", "198.51.100.7")})
    try:
        network.attempts.clear()
        # The first vetted address refuses: the next one is tried, nothing else.
        assert await backend.connect_tcp("HOOKS.example", 443) == "stream"  # type: ignore[comparison-overlap]
        assert network.attempts == [("192.0.2.1", 443), ("198.51.100.7", 443)]
        network.attempts.clear()
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp("elsewhere.example", 443)
        assert network.attempts == []
    finally:
        PINS.reset(token)
