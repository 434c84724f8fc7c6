"""Webhook deliveries: due outbox rows are posted every ``ALLYAPI_WEBHOOK_INTERVAL_SECONDS``
(default 2 s; 0 disables deliveries and the ``training.expiring`` scan). Every process may run
it: deliveries are claimed rows (webhooks/deliverer.py).
"""

from __future__ import annotations

import httpx

from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.runner import Job
from allyapi.webhooks.deliverer import Deliverer, new_client


class WebhookDeliveries(Job):
    name = "webhook-deliverer"

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._deliverer: Deliverer | None = None

    def interval_seconds(self, settings: Settings) -> float:
        return settings.webhook_interval_seconds

    async def run(self, database: Database, settings: Settings) -> object:
        if self._deliverer is None:  # one client per process, kept between runs
            self._client = new_client()
            self._deliverer = Deliverer(database, settings, self._client)
        return await self._deliverer.run_once()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client, self._deliverer = None, None
