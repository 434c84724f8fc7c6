"""How a route gets the webhooks service: ``webhooks: Webhooks``, with the app's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from allyapi.core.auth.security import AppSettings
from allyapi.core.db.session import Session
from allyapi.webhooks.service import WebhookService


async def webhook_service(session: Session, settings: AppSettings) -> WebhookService:
    return WebhookService(session, settings)


Webhooks = Annotated[WebhookService, Depends(webhook_service)]
