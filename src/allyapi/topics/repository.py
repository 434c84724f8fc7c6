"""Topic SQL. Every query is scoped to the caller's org (docs/privacy.md, P8)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from allyapi.topics.models import Topic


class TopicRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all_rows(self, org_id: str) -> Sequence[Topic]:
        """Listed and retired rows alike (bounded by MAX_HISTORY): the whole calendar."""
        query = select(Topic).where(Topic.org_id == org_id).order_by(col(Topic.listed_from))
        return (await self.session.execute(query)).scalars().all()

    async def listed(
        self, org_id: str, topic_id: uuid.UUID, *, for_update: bool = False
    ) -> Topic | None:
        query = select(Topic).where(
            Topic.org_id == org_id, Topic.id == topic_id, col(Topic.retired_at).is_(None)
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def serialise_writes(self, org_id: str) -> None:
        """Topic writes of one organisation, one at a time: the bounds (how many are listed,
        how many rows exist) are counted and then written, which two processes must not
        interleave. PostgreSQL: a transaction-scoped advisory lock; SQLite sessions already
        hold the database's write lock from BEGIN."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                sa.select(
                    sa.func.pg_advisory_xact_lock(sa.func.hashtextextended("topics\n" + org_id, 0))
                )
            )

    def add(self, topic: Topic) -> None:
        self.session.add(topic)
