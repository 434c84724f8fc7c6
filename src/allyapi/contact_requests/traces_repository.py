"""Every row that carries or links a contact request, and how erasure and retention remove them.

A repository of its own (the deletions of ``Lifecycle.erase`` and the retention purge) so the
list of places a request leaves traces is in one file: when a table starts to carry a
request id, it belongs here, and tests/privacy/test_erasure_links.py checks the database
afterwards for the id in every form.

- the thread (``contact_messages``) and the access log (``contact_access_log``);
- the request's data key (``contact_request_keys``): without it no copy of the sealed
  content opens again;
- the ``Idempotency-Key`` that created it (erasure only: a purged request still exists for
  its requester, and its key expires within a day anyway);
- webhook deliveries of per-request events (``webhook_deliveries.contact_request_id``), which
  are also the delivery log;
- the requester's feedback comment (protected content; the ratings are statistics).

Erasure then keeps the statistics under a new random id (``restate``): the erased id itself
appears nowhere afterwards, so nothing stored can be joined to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    ContactRequestKey,
)
from allyapi.core.db.models import table_of
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.feedback.models import RequestFeedback
from allyapi.webhooks.models import WebhookDelivery

REQUESTS = table_of(ContactRequest)


class RequestTraces:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _delete(self, model: Any, column: Any, ids: Sequence[uuid.UUID]) -> None:
        await self.session.execute(
            sa.delete(model)
            .where(col(column).in_(ids))
            .execution_options(synchronize_session=False)
        )

    async def delete_content(self, ids: Sequence[uuid.UUID]) -> None:
        """Thread, access log, data key, per-request deliveries; feedback comments emptied."""
        await self._delete(ContactMessage, ContactMessage.request_id, ids)
        await self._delete(AccessLogEntry, AccessLogEntry.request_id, ids)
        await self._delete(ContactRequestKey, ContactRequestKey.request_id, ids)
        await self._delete(WebhookDelivery, WebhookDelivery.contact_request_id, ids)
        await self.session.execute(
            sa.update(RequestFeedback)
            .where(col(RequestFeedback.request_id).in_(ids))
            .values(comment_sealed=None)
            .execution_options(synchronize_session=False)
        )

    async def delete_idempotency_key(self, org_id: str, request_id: uuid.UUID) -> None:
        """The key row that created the request: it held the creator's keyed reference next
        to the id and a precise time. Gone, a replay of the key creates anew."""
        await self.session.execute(
            sa.delete(IdempotencyKey).where(
                col(IdempotencyKey.org_id) == org_id, col(IdempotencyKey.resource_id) == request_id
            )
        )

    async def restate(self, old_id: uuid.UUID, statistics: dict[str, Any]) -> None:
        """Move what remains of a request to the row ``statistics`` (its own new id): insert
        it, point the feedback ratings at it, delete the old row (nothing else refers to it
        by then: ``delete_content`` ran first)."""
        await self.session.execute(REQUESTS.insert(), statistics)
        await self.session.execute(
            sa.update(RequestFeedback)
            .where(col(RequestFeedback.request_id) == old_id)
            .values(request_id=statistics["id"], comment_sealed=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            sa.delete(ContactRequest)
            .where(col(ContactRequest.id) == old_id)
            .execution_options(synchronize_session=False)
        )
