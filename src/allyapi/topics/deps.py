"""How a route gets the topics service: ``topics: Topics``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from allyapi.core.db.session import Session
from allyapi.topics.service import TopicService


async def topic_service(session: Session) -> TopicService:
    return TopicService(session)


Topics = Annotated[TopicService, Depends(topic_service)]
