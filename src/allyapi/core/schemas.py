"""Base classes for API schemas: request bodies forbid unknown fields; pages are bounded."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")


class RequestBody(BaseModel):
    """Every request body: unknown fields are a 422, so nobody mass-assigns ``status``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PublicSchema(BaseModel):
    """Every response body: built from attributes, fields listed explicitly."""

    model_config = ConfigDict(from_attributes=True)


class Page(PublicSchema, Generic[T]):
    items: list[T] = Field(max_length=100)
    next_cursor: str | None = Field(default=None, max_length=512)


ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LanguageTag = Annotated[
    str,
    StringConstraints(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"),
]
CountryCode = Annotated[str, StringConstraints(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]
