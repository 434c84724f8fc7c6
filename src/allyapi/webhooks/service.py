"""Webhook rules: coordinators and integrations manage their org's subscriptions.

Choices where the SPEC is silent:
- every coordinator/integration of an org sees and manages all of the org's subscriptions
  (they are the org's integration surface, not a person's);
- deleting a subscription deletes its pending deliveries and its delivery log;
- a manual retry re-queues a ``failed`` or ``delivered`` delivery at once with a fresh attempt
  budget (the same ``webhook-id``, so receivers can de-duplicate); a delivery that is still
  ``pending`` is already queued: 409;
- ``POST /v1/webhooks`` honours ``Idempotency-Key``: a replay answers the same subscription
  *with its secret* (the caller who created it may see it again within the key's 24 h; the
  secret is sealed, not hashed, for this and for signing); if it was deleted since, 404.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.crypto import Cipher, aad_for
from allyapi.core.errors import Conflict, InvalidInput, NotFound
from allyapi.core.idempotency import Idempotency, IdempotencyScope, body_hash
from allyapi.core.models import utcnow
from allyapi.core.pagination import PageRequest
from allyapi.core.pseudonym import Subject, subject_ref
from allyapi.core.schemas import Page
from allyapi.core.settings import Settings
from allyapi.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from allyapi.webhooks.repository import WebhookRepository
from allyapi.webhooks.schemas import (
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)
from allyapi.webhooks.signing import new_secret
from allyapi.webhooks.ssrf import BlockedUrl, check_url

CREATE = "webhooks.create"


def secret_aad(webhook_id: uuid.UUID) -> str:
    return aad_for("webhook_subscriptions", webhook_id, "secret")


class WebhookService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.repo = WebhookRepository(session)

    async def create(
        self, who: Subject, body: WebhookCreate, idempotency_key: str | None
    ) -> WebhookCreated:
        org_id = who.org
        if idempotency_key is None:
            return await self._create(org_id, body)
        caller_ref = subject_ref(self.settings.pseudonym_key_bytes, "idem", who)
        scope = IdempotencyScope(
            org_id,
            caller_ref,
            idempotency_key,
            CREATE,
            body_hash(body, self.settings.pseudonym_key_bytes),
        )
        replay = await Idempotency(self.session).claim(scope)
        if replay is not None:
            row = await self.get(org_id, replay.resource_id)
            secret = Cipher(self.settings.data_key_ring).open(row.secret_sealed, secret_aad(row.id))
            return WebhookCreated.model_validate({**_public_fields(row), "secret": secret})
        created = await self._create(org_id, body)
        await Idempotency(self.session).remember(scope, created.id, 201)
        return created

    async def _create(self, org_id: str, body: WebhookCreate) -> WebhookCreated:
        try:
            await check_url(body.url, allow_private=self.settings.allow_private_webhooks)
        except BlockedUrl as error:
            raise InvalidInput(str(error), loc=("body", "url")) from None
        secret = new_secret()
        webhook_id = uuid.uuid4()
        row = WebhookSubscription(
            id=webhook_id,
            org_id=org_id,
            url=body.url,
            events=list(body.events),
            secret_sealed=Cipher(self.settings.data_key_ring).seal(secret, secret_aad(webhook_id)),
        )
        self.repo.add(row)
        await self.session.flush()
        return WebhookCreated.model_validate({**_public_fields(row), "secret": secret})

    async def get(self, org_id: str, webhook_id: uuid.UUID) -> WebhookSubscription:
        row = await self.repo.get(org_id, webhook_id)
        if row is None:
            raise NotFound("webhook not found")
        return row

    async def list(self, org_id: str, *, page: PageRequest) -> Page[WebhookPublic]:
        rows = await self.repo.page(org_id, limit=page.limit, after=page.after_time())
        items = [WebhookPublic.model_validate(_public_fields(row)) for row in rows[: page.limit]]
        return Page[WebhookPublic](
            items=items, next_cursor=page.next_cursor(rows, lambda row: (row.created_at, row.id))
        )

    async def delete(self, org_id: str, webhook_id: uuid.UUID) -> None:
        await self.repo.delete(await self.get(org_id, webhook_id))

    async def deliveries(
        self, org_id: str, webhook_id: uuid.UUID, *, page: PageRequest
    ) -> Page[DeliveryPublic]:
        await self.get(org_id, webhook_id)
        rows = await self.repo.deliveries(
            org_id, webhook_id, limit=page.limit, before=page.after_time()
        )
        items = [DeliveryPublic.model_validate(row) for row in rows[: page.limit]]
        return Page[DeliveryPublic](
            items=items, next_cursor=page.next_cursor(rows, lambda row: (row.created_at, row.id))
        )

    async def retry(
        self, org_id: str, webhook_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> WebhookDelivery:
        delivery = await self.repo.delivery(org_id, webhook_id, delivery_id)
        if delivery is None:
            raise NotFound("delivery not found")
        if delivery.status == DeliveryStatus.pending:
            raise Conflict("this delivery is already queued")
        now = utcnow()
        delivery.status = DeliveryStatus.pending
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.updated_at = now
        await self.session.flush()
        return delivery


def _public_fields(row: WebhookSubscription) -> dict[str, object]:
    return {"id": row.id, "url": row.url, "events": row.events, "created_at": row.created_at}
