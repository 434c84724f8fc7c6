"""Audit trail SQL: append, page newest first, purge past retention."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from allyapi.audit.models import AuditEvent
from allyapi.core.db.models import table_of

EVENTS = table_of(AuditEvent)
CHUNK = 500  # rows per INSERT: well under both drivers' bind-parameter limits


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, rows: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(rows), CHUNK):
            await self.session.execute(sa.insert(EVENTS), list(rows[start : start + CHUNK]))

    async def exists(self, org_id: str, action: str, target_id: str) -> bool:
        query = sa.select(sa.literal(1)).where(
            EVENTS.c.org_id == org_id, EVENTS.c.action == action, EVENTS.c.target_id == target_id
        )
        return (await self.session.execute(query.limit(1))).first() is not None

    async def page(
        self,
        org_id: str,
        where: AuditFilter,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> Sequence[AuditEvent]:
        """Newest first, ``limit`` rows (``PageRequest.fetch``); ``before`` is the last row of
        the previous page."""
        query = sa.select(AuditEvent).where(col(AuditEvent.org_id) == org_id)
        conditions: list[ColumnElement[bool]] = []
        if where.actor is not None:
            conditions.append(col(AuditEvent.actor_id) == where.actor)
        if where.action is not None:
            conditions.append(col(AuditEvent.action) == where.action)
        if where.target_type is not None:
            conditions.append(col(AuditEvent.target_type) == where.target_type)
        if where.target_id is not None:
            conditions.append(col(AuditEvent.target_id) == where.target_id)
        if where.since is not None:
            conditions.append(col(AuditEvent.occurred_at) >= where.since)
        if where.until is not None:
            conditions.append(col(AuditEvent.occurred_at) < where.until)
        query = query.where(*conditions)
        if before is not None:
            position = sa.tuple_(col(AuditEvent.occurred_at), col(AuditEvent.id))
            query = query.where(position < sa.tuple_(*before))
        query = query.order_by(col(AuditEvent.occurred_at).desc(), col(AuditEvent.id).desc())
        return (await self.session.execute(query.limit(limit))).scalars().all()


async def purge_audit_batch(session: AsyncSession, before: datetime, batch_size: int) -> int:
    """Events older than the retention period, a batch at a time (the purge job)."""
    old = (
        sa.select(EVENTS.c.id)
        .where(EVENTS.c.occurred_at < before)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    ids = [row[0] for row in (await session.execute(old)).all()]
    if not ids:
        return 0
    result = await session.execute(sa.delete(EVENTS).where(EVENTS.c.id.in_(ids)))
    return int(result.rowcount)  # type: ignore[attr-defined]
