"""/v1/webhooks: subscriptions, their delivery log and manual retry
(docs/integration-guide.md, "Webhooks")."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.audit.trail import Audit
from allyapi.core.auth.security import IntegrationOrCoordinator
from allyapi.core.http.idempotency import IdempotencyKeyHeader, mark_replay
from allyapi.core.http.openapi import headers_on, problem_responses
from allyapi.core.http.pagination import PageQuery
from allyapi.core.http.schemas import Page
from allyapi.webhooks.deps import Webhooks
from allyapi.webhooks.schemas import DeliveryPublic, WebhookCreate, WebhookCreated, WebhookPublic

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a URL to events (the signing secret is shown once)",
    responses={**problem_responses(403), **headers_on(201, "Location")},
)
async def create_webhook(
    caller: IntegrationOrCoordinator,
    webhooks: Webhooks,
    body: WebhookCreate,
    response: Response,
    audit: Audit,
    idempotency_key: IdempotencyKeyHeader = None,
) -> WebhookCreated:
    """Per-request events (`contact_request.*`) may be subscribed by integration clients only:
    a token with the coordinator or analyst role that asks for one gets a 403. The client that
    creates a subscription owns it; only the owner sees the deliveries of per-request events
    in the delivery log."""
    made = await webhooks.create(caller, body, idempotency_key)
    await audit.record(
        AuditAction.webhook_create, AuditTarget.webhook, made.value.id, ["url", "events"], once=True
    )
    response.headers["Location"] = f"/v1/webhooks/{made.value.id}"
    mark_replay(response, made.replayed)
    return made.value


@router.get("", summary="List the organisation's webhook subscriptions")
async def list_webhooks(
    caller: IntegrationOrCoordinator, webhooks: Webhooks, page: PageQuery
) -> Page[WebhookPublic]:
    return await webhooks.list(caller.org, page=page)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unsubscribe (pending deliveries and the delivery log go too)",
)
async def delete_webhook(
    caller: IntegrationOrCoordinator, webhooks: Webhooks, webhook_id: uuid.UUID, audit: Audit
) -> None:
    await webhooks.delete(caller.org, webhook_id)
    await audit.record(AuditAction.webhook_delete, AuditTarget.webhook, webhook_id)


@router.get("/{webhook_id}/deliveries", summary="Delivery log, newest first")
async def list_webhook_deliveries(
    caller: IntegrationOrCoordinator,
    webhooks: Webhooks,
    webhook_id: uuid.UUID,
    page: PageQuery,
) -> Page[DeliveryPublic]:
    """Per-request events' deliveries appear only to the integration client owning the
    subscription."""
    return await webhooks.deliveries(caller, webhook_id, page=page)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivered or failed delivery again, now",
    responses=problem_responses(409),
)
async def retry_webhook_delivery(
    caller: IntegrationOrCoordinator,
    webhooks: Webhooks,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    audit: Audit,
) -> DeliveryPublic:
    delivery = await webhooks.retry(caller, webhook_id, delivery_id)
    await audit.record(
        AuditAction.webhook_delivery_retry, AuditTarget.webhook_delivery, delivery_id, ["status"]
    )
    return DeliveryPublic.model_validate(delivery)
