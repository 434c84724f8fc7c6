"""The webhook workers of one server process, started and stopped by the app lifespan.

Three ``PeriodicRunner``s (core/background.py): the deliverer every
``ALLYAPI_WEBHOOK_INTERVAL_SECONDS`` (default 2 s; 0 disables all three), the
``training.expiring`` scan hourly, and the listing check every two minutes (an ally whose
required course expired today is unlisted by the calendar alone: ``ally.unlisted`` follows
within minutes). Every process may run them: claims, markers and conditional updates make
that safe (deliverer.py, expiring.py, allies/announcements.py).
"""

from __future__ import annotations

from functools import partial

import httpx

from allyapi.allies.announcements import announce_due
from allyapi.core.background import PeriodicRunner
from allyapi.core.database import Database
from allyapi.core.settings import Settings
from allyapi.webhooks.deliverer import Deliverer, new_client
from allyapi.webhooks.expiring import emit_training_expiring

EXPIRING_INTERVAL_SECONDS = 3600.0
LISTING_INTERVAL_SECONDS = 120.0


class WebhookWorkers:
    def __init__(self, runners: list[PeriodicRunner], client: httpx.AsyncClient) -> None:
        self.runners = runners
        self.client = client

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.stop()
        await self.client.aclose()


def start_webhook_workers(settings: Settings, database: Database) -> WebhookWorkers | None:
    if settings.webhook_interval_seconds <= 0:
        return None
    client = new_client()
    deliverer = Deliverer(database, settings, client)
    runners = [
        PeriodicRunner("webhook-deliverer", deliverer.run_once, settings.webhook_interval_seconds),
        PeriodicRunner(
            "webhook-training-expiring",
            partial(emit_training_expiring, database),
            EXPIRING_INTERVAL_SECONDS,
        ),
        PeriodicRunner(
            "webhook-listing-changes", partial(announce_due, database), LISTING_INTERVAL_SECONDS
        ),
    ]
    for runner in runners:
        runner.start()
    return WebhookWorkers(runners, client)
