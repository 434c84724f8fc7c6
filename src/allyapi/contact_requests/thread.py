"""The message thread of a request and its access log (docs/privacy.md, P4, P5).

Choices the product rules leave open:
- while the request is ``pending`` only the requester may post (to add to what they wrote);
  the ally answers once they accepted (409 before), so an ally never starts a conversation
  they have not taken on;
- posting on a closed request (declined, completed, cancelled, expired) is a 409; reading the
  thread of a closed request stays possible until its content is purged;
- a thread holds at most 200 messages (409 beyond): the request row is read ``FOR UPDATE``
  first, so two racing posts cannot both take message 200;
- the assigned ally may read the thread before accepting (it is part of what the requester
  chose to share, like the first message); every such read is access-logged;
- the access log lists newest first.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.access import RequestAccess, Role
from allyapi.contact_requests.lifecycle import CLOSED
from allyapi.contact_requests.models import ContactMessage, RequestStatus
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.contact_requests.schemas import AccessLogEntryPublic, MessagePublic
from allyapi.contact_requests.service import ContactRequestService
from allyapi.core.db.models import utcnow
from allyapi.core.http.errors import Conflict
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page
from allyapi.core.settings import Settings

MAX_MESSAGES = 200


class ThreadService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.repo = ContactRequestRepository(session)
        self.requests = ContactRequestService(session, settings)
        self.views = self.requests.views

    async def post(self, access: RequestAccess, body: str) -> MessagePublic:
        request = access.request  # read FOR UPDATE by the dependency
        if request.status in CLOSED:
            raise Conflict(f"the request is {request.status}: its thread is closed")
        if access.role == Role.ally and request.status == RequestStatus.pending:
            raise Conflict("accept the request before writing to the requester")
        if await self.repo.count_messages(request.id) >= MAX_MESSAGES:
            raise Conflict(f"a thread holds at most {MAX_MESSAGES} messages")
        message = ContactMessage(
            id=uuid.uuid4(),
            org_id=request.org_id,
            request_id=request.id,
            author=access.role.value,
            body_sealed="",
            created_at=utcnow(),
        )
        key = await self.requests.keys.for_writing(request.org_id, request.id)
        self.views.seal_message(message, body, key)
        self.repo.add(message)
        await self.session.flush()
        return MessagePublic(
            id=message.id, author=access.role.value, body=body, created_at=message.created_at
        )

    async def list(self, access: RequestAccess, *, page: PageRequest) -> Page[MessagePublic]:
        await self.requests.hold_for_reading(access)
        rows = await self.repo.page_of_messages(
            access.request.id, limit=page.fetch, after=page.after_time()
        )
        key = await self.requests.key_of(access.request) if rows else None
        if rows:
            await self.requests.log_access(access, "read_messages")
        shown, next_cursor = page.split(rows, lambda row: (row.created_at, row.id))
        return Page(items=[self.views.message(row, key) for row in shown], next_cursor=next_cursor)

    async def access_log(
        self, access: RequestAccess, *, page: PageRequest
    ) -> Page[AccessLogEntryPublic]:
        rows = await self.repo.page_of_access_log(
            access.request.id, limit=page.fetch, before=page.after_time()
        )
        shown, next_cursor = page.split(rows, lambda row: (row.accessed_at, row.id))
        items = [AccessLogEntryPublic.model_validate(row) for row in shown]
        return Page(items=items, next_cursor=next_cursor)
