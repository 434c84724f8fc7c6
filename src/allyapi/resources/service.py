"""Resource rules: coordinators curate; everyone on staff reads."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import utcnow
from allyapi.core.http.errors import NotFound
from allyapi.core.http.etag import check_if_match
from allyapi.core.http.idempotency import Idempotency, IdempotencyScope, Made
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page
from allyapi.resources.models import Resource
from allyapi.resources.repository import ResourceRepository
from allyapi.resources.schemas import ResourceCreate, ResourcePublic, ResourceUpdate


class ResourceService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = ResourceRepository(session)

    async def list(
        self,
        org_id: str,
        *,
        page: PageRequest,
        country: str | None,
        include_global: bool,
        category: str | None,
    ) -> Page[ResourcePublic]:
        rows = await self.repo.page(
            org_id,
            limit=page.fetch,
            after=page.after_text(),
            country=country,
            include_global=include_global,
            category=category,
        )
        shown, next_cursor = page.split(rows, lambda row: (row.name, row.id))
        items = [ResourcePublic.model_validate(row) for row in shown]
        return Page[ResourcePublic](items=items, next_cursor=next_cursor)

    async def get(
        self, org_id: str, resource_id: uuid.UUID, *, for_update: bool = False
    ) -> Resource:
        resource = await self.repo.get(org_id, resource_id, for_update=for_update)
        if resource is None:
            raise NotFound("resource not found")
        return resource

    async def create(
        self, org_id: str, body: ResourceCreate, idempotency: IdempotencyScope | None
    ) -> Made[Resource]:
        """With an Idempotency-Key, a repeat answers the resource as it is now (404 once
        deleted), creating nothing."""
        if idempotency is not None:
            replay = await Idempotency(self.session).claim(idempotency)
            if replay is not None:
                return Made(await self.get(org_id, replay.resource_id), replayed=True)
        data = body.model_dump(mode="json")
        resource = Resource(org_id=org_id, **data)
        self.repo.add(resource)
        await self.session.flush()
        if idempotency is not None:
            await Idempotency(self.session).remember(idempotency, resource.id, 201)
        return Made(resource)

    async def update(
        self, org_id: str, resource_id: uuid.UUID, body: ResourceUpdate, if_match: str | None
    ) -> Resource:
        resource = await self.get(org_id, resource_id, for_update=True)
        check_if_match(if_match, resource.id, resource.version)
        changes = body.model_dump(mode="json", exclude_unset=True)
        for field, value in changes.items():
            if value is None and field in {"name", "category"}:
                continue
            setattr(resource, field, value)
        resource.version += 1
        resource.updated_at = utcnow()
        await self.session.flush()
        return resource

    async def delete(self, org_id: str, resource_id: uuid.UUID, if_match: str | None) -> None:
        resource = await self.get(org_id, resource_id, for_update=True)
        check_if_match(if_match, resource.id, resource.version)
        await self.repo.delete(resource)
