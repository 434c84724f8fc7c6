"""Reading the audit trail: one page of events, newest first."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.audit.repository import AuditFilter, AuditRepository
from allyapi.audit.schemas import AuditEventPublic, event_view
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page


class AuditEventService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = AuditRepository(session)

    async def page(
        self, org_id: str, where: AuditFilter, page: PageRequest
    ) -> Page[AuditEventPublic]:
        rows = await self.repo.page(org_id, where, limit=page.fetch, before=page.after_time())
        shown, next_cursor = page.split(rows, lambda row: (row.occurred_at, row.id))
        return Page(items=[event_view(row) for row in shown], next_cursor=next_cursor)
