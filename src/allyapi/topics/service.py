"""Topic rules: coordinators keep the list; employees, coordinators and analysts read it.

The list is bounded (``MAX_LISTED`` listed at once, ``MAX_HISTORY`` rows ever) and every
listed topic gets its own report group, so nothing is ever folded away for space. A change
applies from the next period on (aggregates/calendar.py); that is why removing a topic retires
its row instead of deleting it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import utcnow
from allyapi.core.http.errors import Conflict, NotFound
from allyapi.core.http.etag import check_if_match
from allyapi.core.http.idempotency import Idempotency, IdempotencyScope
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page
from allyapi.topics.defaults import (
    DEFAULT_TOPICS,
    EPOCH,
    MAX_HISTORY,
    MAX_LISTED,
    default_topic_id,
)
from allyapi.topics.models import Topic
from allyapi.topics.repository import TopicRepository
from allyapi.topics.schemas import TopicCreate, TopicPublic, TopicUpdate


def default_rows(org_id: str) -> list[Topic]:
    """The built-in list as rows (not stored until the organisation's first change)."""
    return [
        Topic(
            id=default_topic_id(org_id, key),
            org_id=org_id,
            key=key,
            listed_from=EPOCH,
            created_at=EPOCH,
            updated_at=EPOCH,
        )
        for key in DEFAULT_TOPICS
    ]


@dataclass(frozen=True)
class Listing:
    """A topic as the calendar of report groups sees it (aggregates/calendar.py)."""

    key: str
    listed_from: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class Created:
    topic: Topic
    replayed: bool


class TopicService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = TopicRepository(session)

    async def listings(self, org_id: str) -> list[Listing]:
        """Every row as a calendar entry (empty: the organisation uses the defaults)."""
        return [
            Listing(row.key, row.listed_from, row.retired_at)
            for row in await self.repo.all_rows(org_id)
        ]

    async def _listed(self, org_id: str) -> list[Topic]:
        rows = await self.repo.all_rows(org_id)
        if not rows:
            return default_rows(org_id)
        return [row for row in rows if row.retired_at is None]

    async def list(self, org_id: str, *, page: PageRequest) -> Page[TopicPublic]:
        """At most 50 listed rows: sorted and sliced in memory (the defaults are not stored)."""
        listed = sorted(await self._listed(org_id), key=lambda row: (row.key, str(row.id)))
        after = page.after_text()
        if after is not None:
            listed = [row for row in listed if (row.key, str(row.id)) > (after[0], str(after[1]))]
        shown, next_cursor = page.split(listed[: page.fetch], lambda row: (row.key, row.id))
        return Page[TopicPublic](
            items=[TopicPublic.model_validate(row) for row in shown], next_cursor=next_cursor
        )

    async def get(self, org_id: str, topic_id: uuid.UUID) -> Topic:
        for row in await self._listed(org_id):
            if row.id == topic_id:
                return row
        raise NotFound("topic not found")

    async def _writable(self, org_id: str, topic_id: uuid.UUID) -> Topic:
        await self._prepare_write(org_id)
        topic = await self.repo.listed(org_id, topic_id, for_update=True)
        if topic is None:
            raise NotFound("topic not found")
        return topic

    async def _prepare_write(self, org_id: str) -> None:
        """One writer per organisation; the first change stores the defaults it replaces."""
        await self.repo.serialise_writes(org_id)
        if not await self.repo.all_rows(org_id):
            for row in default_rows(org_id):
                self.repo.add(row)
            await self.session.flush()

    async def create(
        self, org_id: str, body: TopicCreate, idempotency: IdempotencyScope | None
    ) -> Created:
        await self._prepare_write(org_id)
        if idempotency is not None:
            replay = await Idempotency(self.session).claim(idempotency)
            if replay is not None:
                return Created(await self.get(org_id, replay.resource_id), replayed=True)
        rows = await self.repo.all_rows(org_id)
        listed = [row for row in rows if row.retired_at is None]
        if any(row.key == body.key for row in listed):
            raise Conflict("this topic is already listed")
        if len(listed) >= MAX_LISTED:
            raise Conflict(f"at most {MAX_LISTED} topics can be listed at once")
        if len(rows) >= MAX_HISTORY:
            raise Conflict(f"the topic history is full ({MAX_HISTORY} rows)")
        now = utcnow()
        topic = Topic(org_id=org_id, key=body.key, label=body.label, listed_from=now)
        self.repo.add(topic)
        try:
            await self.session.flush()
        except IntegrityError:  # unreachable while writes are serialised; kept as the last word
            raise Conflict("this topic is already listed") from None
        if idempotency is not None:
            await Idempotency(self.session).remember(idempotency, topic.id, 201)
        return Created(topic, replayed=False)

    async def update(
        self, org_id: str, topic_id: uuid.UUID, body: TopicUpdate, if_match: str | None
    ) -> Topic:
        topic = await self._writable(org_id, topic_id)
        check_if_match(if_match, topic.id, topic.version)
        if "label" in body.model_fields_set:
            topic.label = body.label
        topic.version += 1
        topic.updated_at = utcnow()
        await self.session.flush()
        return topic

    async def retire(self, org_id: str, topic_id: uuid.UUID, if_match: str | None) -> None:
        """Keeps the row: the periods that began while it was listed keep their group."""
        topic = await self._writable(org_id, topic_id)
        check_if_match(if_match, topic.id, topic.version)
        now = utcnow()
        topic.retired_at = now
        topic.version += 1
        topic.updated_at = now
        await self.session.flush()
