"""Resource schemas: create/update bodies forbid unknown fields; one public shape for all."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, HttpUrl, StringConstraints, UrlConstraints, field_validator

from allyapi.core.http.schemas import CountryCode, PublicSchema, RequestBody
from allyapi.resources.models import ResourceCategory

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=50, pattern=r"^[0-9+()\-. ]+$")]
Hours = Annotated[str, StringConstraints(max_length=200)]
# 499 as typed: normalising may add a trailing "/", and the stored form must fit 500.
Url = Annotated[HttpUrl, UrlConstraints(max_length=499)]


class _UrlCheck(RequestBody):
    @field_validator("url", check_fields=False)
    @classmethod
    def _https_or_http(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and len(str(value)) > 500:
            raise ValueError("url is longer than 500 characters")
        return value


class ResourceCreate(_UrlCheck):
    name: Name
    description: Description | None = None
    category: ResourceCategory
    country: CountryCode | None = Field(
        default=None, description="ISO 3166-1 alpha-2; omit for global"
    )
    url: Url | None = None
    phone: Phone | None = None
    hours: Hours | None = None


class ResourceUpdate(_UrlCheck):
    name: Name | None = None
    description: Description | None = None
    category: ResourceCategory | None = None
    country: CountryCode | None = None
    url: Url | None = None
    phone: Phone | None = None
    hours: Hours | None = None


class ResourcePublic(PublicSchema):
    id: uuid.UUID
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    category: ResourceCategory
    country: str | None = Field(default=None, max_length=2)
    url: str | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, max_length=50)
    hours: str | None = Field(default=None, max_length=200)
