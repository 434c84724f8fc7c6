"""SCIM SQL: ally accounts joined to their ally profiles, always within one org (tenant
isolation, P8 in docs/privacy.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from allyapi.allies.models import Ally
from allyapi.core.db.models import table_of
from allyapi.core.db.upsert import insert_ignoring_conflict
from allyapi.scim.models import AllyAccount

ACCOUNTS = table_of(AllyAccount)

AccountRow = tuple[AllyAccount, Ally]


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ally_by_refs(self, org_id: str, refs: Iterable[str]) -> Ally | None:
        """The ally profile whose owner reference is one of ``refs`` (one per issuer)."""
        query = select(Ally).where(
            col(Ally.org_id) == org_id, col(Ally.subject_ref).in_(list(refs))
        )
        return (await self.session.execute(query.limit(1))).scalars().first()

    async def get(
        self, org_id: str, ally_id: uuid.UUID, *, for_update: bool = False
    ) -> AccountRow | None:
        query = (
            select(AllyAccount, Ally)
            .join(Ally, col(Ally.id) == col(AllyAccount.id))
            .where(col(AllyAccount.org_id) == org_id, col(AllyAccount.id) == ally_id)
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def link(self, account: AllyAccount) -> bool:
        """Insert the link unless the ally has one already; True when this call made it."""
        values = {column.name: getattr(account, column.name) for column in ACCOUNTS.c}
        return await insert_ignoring_conflict(self.session, AllyAccount, values)

    async def page(self, org_id: str, *, offset: int, limit: int) -> Sequence[AccountRow]:
        query = (
            select(AllyAccount, Ally)
            .join(Ally, col(Ally.id) == col(AllyAccount.id))
            .where(col(AllyAccount.org_id) == org_id)
            .order_by(col(AllyAccount.created_at), col(AllyAccount.id))
            .offset(offset)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def count(self, org_id: str) -> int:
        query = sa.select(sa.func.count()).where(col(AllyAccount.org_id) == org_id)
        return int((await self.session.execute(query)).scalar() or 0)

    async def delete(self, org_id: str, ally_id: uuid.UUID) -> None:
        await self.session.execute(
            sa.delete(AllyAccount).where(
                col(AllyAccount.org_id) == org_id, col(AllyAccount.id) == ally_id
            )
        )
