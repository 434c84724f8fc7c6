"""Webhook rules: coordinators and integrations manage their org's subscriptions.

Choices the product rules leave open:
- every coordinator/integration of an org sees and manages all of the org's subscriptions
  (they are the org's integration surface, not a person's);
- deleting a subscription deletes its pending deliveries and its delivery log;
- a manual retry re-queues a ``failed`` or ``delivered`` delivery at once with a fresh attempt
  budget (the same ``webhook-id``, so receivers can de-duplicate); a delivery that is still
  ``pending`` is already queued: 409;
- ``POST /v1/webhooks`` honours ``Idempotency-Key``: a replay answers the same subscription
  *with its secret* (the caller who created it may see it again within the key's 24 h; the
  secret is sealed, not hashed, for this and for signing); if it was deleted since, 404.

Per-request events (``contact_request.*``) are for integration clients only: a caller holding
a programme-staff role (coordinator, analyst) who asks for one gets a 403, whatever other role
the token carries. The client that creates a subscription owns it (``owner_ref``), and the
deliveries of per-request events are in *its* delivery log only: other integration clients and
coordinators of the org see the subscription and its other deliveries, not those (a retry of
one is a 404 for them). docs/integration-guide.md, "Webhooks", says so to integrators.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.tokens import Principal
from allyapi.core.db.models import utcnow
from allyapi.core.http.errors import Conflict, Forbidden, InvalidInput, NotFound
from allyapi.core.http.idempotency import Idempotency, Made, scope_of
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import Settings
from allyapi.webhooks.models import (
    PER_REQUEST_EVENTS,
    DeliveryStatus,
    WebhookDelivery,
    WebhookSubscription,
)
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
STAFF_ROLES = ("coordinator", "analyst")


def is_integration_client(caller: Principal) -> bool:
    """A machine client: the integration role and no programme-staff role."""
    return caller.has("integration") and not caller.has(*STAFF_ROLES)


def secret_aad(webhook_id: uuid.UUID) -> str:
    return aad_for("webhook_subscriptions", webhook_id, "secret")


class WebhookService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.repo = WebhookRepository(session)

    def owner_ref(self, caller: Principal) -> str | None:
        """The reference a subscription of this caller is owned by: integration clients only."""
        if not is_integration_client(caller):
            return None
        return subject_ref(self.settings.pseudonym_key_bytes, "webhook", caller.subject)

    async def create(
        self, caller: Principal, body: WebhookCreate, idempotency_key: str | None
    ) -> Made[WebhookCreated]:
        org_id = caller.org
        per_request = sorted(PER_REQUEST_EVENTS.intersection(body.events))
        if per_request and not is_integration_client(caller):
            raise Forbidden(
                "per-request events are for integration clients only, never for programme "
                "staff: " + ", ".join(per_request)
            )
        owner = self.owner_ref(caller)
        key = self.settings.pseudonym_key_bytes
        scope = scope_of(org_id, caller.subject, key, idempotency_key, CREATE, body)
        if scope is None:
            return Made(await self._create(org_id, body, owner))
        replay = await Idempotency(self.session).claim(scope)
        if replay is not None:
            row = await self.get(org_id, replay.resource_id)
            secret = Cipher(self.settings.data_key_ring).open(row.secret_sealed, secret_aad(row.id))
            replayed = WebhookCreated.model_validate({**_public_fields(row), "secret": secret})
            return Made(replayed, replayed=True)
        created = await self._create(org_id, body, owner)
        await Idempotency(self.session).remember(scope, created.id, 201)
        return Made(created)

    async def _create(
        self, org_id: str, body: WebhookCreate, owner_ref: str | None
    ) -> WebhookCreated:
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
            owner_ref=owner_ref,
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
        rows = await self.repo.page(org_id, limit=page.fetch, after=page.after_time())
        shown, next_cursor = page.split(rows, lambda row: (row.created_at, row.id))
        items = [WebhookPublic.model_validate(_public_fields(row)) for row in shown]
        return Page[WebhookPublic](items=items, next_cursor=next_cursor)

    async def delete(self, org_id: str, webhook_id: uuid.UUID) -> None:
        await self.repo.delete(await self.get(org_id, webhook_id))

    def _owns(self, caller: Principal, row: WebhookSubscription) -> bool:
        owner = self.owner_ref(caller)
        return owner is not None and row.owner_ref == owner

    async def deliveries(
        self, caller: Principal, webhook_id: uuid.UUID, *, page: PageRequest
    ) -> Page[DeliveryPublic]:
        """The log; deliveries of per-request events are in their owner's view only."""
        row = await self.get(caller.org, webhook_id)
        rows = await self.repo.deliveries(
            caller.org,
            webhook_id,
            limit=page.fetch,
            before=page.after_time(),
            per_request=self._owns(caller, row),
        )
        shown, next_cursor = page.split(rows, lambda row: (row.created_at, row.id))
        items = [DeliveryPublic.model_validate(row) for row in shown]
        return Page[DeliveryPublic](items=items, next_cursor=next_cursor)

    async def retry(
        self, caller: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> WebhookDelivery:
        row = await self.get(caller.org, webhook_id)
        delivery = await self.repo.delivery(
            caller.org, webhook_id, delivery_id, per_request=self._owns(caller, row)
        )
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
