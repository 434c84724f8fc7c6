"""Topic bodies and views. A topic's key is the tag requests and ally profiles already use."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from allyapi.core.http.schemas import PublicSchema, RequestBody

# The same shape as a contact request's topic: one word, matched case-insensitively.
TopicKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$"),
]
TopicLabel = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class TopicCreate(RequestBody):
    key: TopicKey = Field(description="The tag requests name (stored lower-case)")
    label: TopicLabel | None = Field(default=None, description="How portals show it")

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return value.lower()


class TopicUpdate(RequestBody):
    """Only the label: a different key is a different topic (remove this one, add that)."""

    label: TopicLabel | None = None


class TopicPublic(PublicSchema):
    id: uuid.UUID
    key: str = Field(max_length=64)
    label: str | None = Field(default=None, max_length=100)
