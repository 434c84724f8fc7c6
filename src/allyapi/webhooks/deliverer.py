"""The background deliverer: claims due deliveries, POSTs them, records the outcome.

At least once, never twice at the same moment:
- a claim is a short transaction that picks due rows (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, so two processes take disjoint rows without waiting) and, in a guarded UPDATE,
  counts the attempt and moves ``next_attempt_at`` a *lease* ahead. Only then is anything sent,
  outside any transaction. Another process sees the row as not due until the lease ends, so
  it cannot send it concurrently; if this process dies mid-send, the row is due again after the
  lease and is retried (at least once). SQLite has one writer: the guarded UPDATE decides.
- the outcome is written only if the row still carries this claim's attempt number and is
  still pending (a manual retry or a deleted subscription in between wins).

HTTP: httpx with a 5 s timeout, redirects never followed (a 3xx is a failure), proxies and
``.netrc`` from the environment ignored, the response body never read or stored. The SSRF
guard runs again before each send, and the connection goes to exactly the addresses it
vetted (ssrf.PinnedBackend: no second DNS lookup to rebind). Failures back off exponentially
with ±20 % jitter (10 s, 20 s, 40 s, … capped at 1 h); after ``max_attempts`` the delivery is ``failed`` and
stays in the log for a manual retry. Finished deliveries are pruned after 30 days.

The statements (the claim, the guarded outcome, the prune) are in webhooks/delivery_repository.py;
the batches and the transaction of each are here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpcore
import httpx

from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.privacy.crypto import Cipher, DecryptionError
from allyapi.core.settings import Settings
from allyapi.webhooks.delivery_repository import (
    Claim,
    claim_due,
    prune_finished,
    record_outcome,
)
from allyapi.webhooks.models import DeliveryStatus
from allyapi.webhooks.service import secret_aad
from allyapi.webhooks.signing import headers
from allyapi.webhooks.ssrf import PINS, BlockedUrl, PinnedBackend, resolve_for_delivery

logger = logging.getLogger("allyapi.webhooks")

TIMEOUT_SECONDS = 5.0
SEND_DEADLINE_SECONDS = 10.0  # the whole exchange, however slowly a receiver drips
LEASE = timedelta(seconds=60)  # > SEND_DEADLINE_SECONDS, with room for recording
BATCH_SIZE = 20
MAX_BATCHES = 10
MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 10.0
MAX_DELAY_SECONDS = 3600.0
KEEP_FINISHED = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)  # a DELETE per poll would be a write every few seconds


def new_client(network: httpcore.AsyncNetworkBackend | None = None) -> httpx.AsyncClient:
    """The deliverer's client: its connections go only to the addresses each delivery vetted
    (ssrf.PinnedBackend; ``network``: what it connects through, for tests)."""
    transport = httpx.AsyncHTTPTransport(http2=False, trust_env=False)
    # httpx does not take a network backend; its pool does. The pinning test fails if this
    # stops taking effect (tests/webhooks/test_dns_pinning.py).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        network_backend=PinnedBackend(network),
    )
    return httpx.AsyncClient(
        transport=transport, timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
    )


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Deliverer:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        batch_size: int = BATCH_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay_seconds: float = BASE_DELAY_SECONDS,
        lease: timedelta = LEASE,
    ) -> None:
        self.database = database
        self.allow_private = settings.allow_private_webhooks
        self.cipher = Cipher(settings.data_key_ring)
        self.client = client
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.base_delay = base_delay_seconds
        self.lease = lease
        self.pruned_at: datetime | None = None

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim and send due deliveries, batch after batch; returns how many were attempted."""
        total = 0
        for _ in range(MAX_BATCHES):
            at = now or utcnow()
            claims = await self.claim(at)
            if not claims:
                break
            outcomes = await asyncio.gather(*(self.send(claim) for claim in claims))
            await self.record(list(zip(claims, outcomes, strict=True)), at)
            total += len(claims)
        at = now or utcnow()
        if self.pruned_at is None or at - self.pruned_at >= PRUNE_EVERY:
            await self.prune(at)
            self.pruned_at = at
        return total

    async def claim(self, now: datetime) -> list[Claim]:
        async with self.database.sessionmaker() as session, session.begin():
            return await claim_due(session, now, self.batch_size, self.lease)

    async def send(self, claim: Claim) -> Outcome:
        try:
            host, addresses = await resolve_for_delivery(
                claim.url, allow_private=self.allow_private
            )
            secret = self.cipher.open(claim.secret_sealed, secret_aad(claim.subscription_id))
        except BlockedUrl:
            return Outcome(None, "blocked address")
        except DecryptionError:
            return Outcome(None, "secret unreadable")
        message = headers(secret, str(claim.event_id), int(time.time()), claim.body)
        pinned = PINS.set({host: addresses})  # this task's connection goes to these only
        try:
            async with asyncio.timeout(SEND_DEADLINE_SECONDS):
                request = self.client.build_request(
                    "POST", claim.url, content=claim.body.encode(), headers=message
                )
                response = await self.client.send(request, stream=True)
                await response.aclose()  # the body is never read: it could be anything
        except (httpx.HTTPError, TimeoutError) as exc:
            return Outcome(None, type(exc).__name__)
        finally:
            PINS.reset(pinned)
        if 200 <= response.status_code < 300:
            return Outcome(response.status_code, None)
        return Outcome(response.status_code, f"HTTP {response.status_code}")

    def backoff(self, attempt: int) -> timedelta:
        delay = min(self.base_delay * 2 ** (attempt - 1), MAX_DELAY_SECONDS)
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311 - not crypto

    async def record(self, results: list[tuple[Claim, Outcome]], now: datetime) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            for claim, outcome in results:
                values: dict[str, object] = {
                    "last_status_code": outcome.status_code,
                    "last_error": outcome.error,
                    "updated_at": now,
                }
                if outcome.ok:
                    values |= {"status": DeliveryStatus.delivered, "delivered_at": now}
                    values["next_attempt_at"] = None
                elif claim.attempt >= self.max_attempts:
                    values |= {"status": DeliveryStatus.failed, "next_attempt_at": None}
                else:
                    values["next_attempt_at"] = now + self.backoff(claim.attempt)
                await record_outcome(session, claim, values)

    async def prune(self, now: datetime) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            await prune_finished(session, now - KEEP_FINISHED)
