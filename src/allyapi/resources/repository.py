"""Resource SQL. Every query is scoped to the caller's org (docs/privacy.md, P8)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from allyapi.resources.models import Resource


class ResourceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, org_id: str, resource_id: uuid.UUID, *, for_update: bool = False
    ) -> Resource | None:
        query = select(Resource).where(Resource.org_id == org_id, Resource.id == resource_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def page(
        self,
        org_id: str,
        *,
        limit: int,
        after: tuple[str, uuid.UUID] | None,
        country: str | None,
        include_global: bool,
        category: str | None,
    ) -> Sequence[Resource]:
        query = select(Resource).where(Resource.org_id == org_id)
        if country is not None:
            if include_global:
                query = query.where(
                    sa.or_(col(Resource.country) == country, col(Resource.country).is_(None))
                )
            else:
                query = query.where(Resource.country == country)
        if category is not None:
            query = query.where(Resource.category == category)
        if after is not None:
            query = query.where(sa.tuple_(Resource.name, Resource.id) > after)
        query = query.order_by(col(Resource.name), col(Resource.id)).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def for_signposting(
        self, org_id: str, country: str | None, categories: Sequence[str]
    ) -> Sequence[Resource]:
        """Crisis and professional help for a country plus the global ones (README)."""
        where_country: ColumnElement[bool] = col(Resource.country).is_(None)
        if country:
            where_country = sa.or_(where_country, col(Resource.country) == country)
        query = (
            select(Resource)
            .where(Resource.org_id == org_id, col(Resource.category).in_(categories), where_country)
            .order_by(col(Resource.category), col(Resource.name), col(Resource.id))
            .limit(20)
        )
        return (await self.session.execute(query)).scalars().all()

    def add(self, resource: Resource) -> None:
        self.session.add(resource)

    async def delete(self, resource: Resource) -> None:
        await self.session.delete(resource)
