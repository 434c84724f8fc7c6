"""Signposting resources: crisis lines, EAP, professional help, guides."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from allyapi.core.db.models import TenantRow, Versioned


class ResourceCategory(StrEnum):
    crisis = "crisis"
    eap = "eap"
    professional = "professional"
    guide = "guide"


class Resource(TenantRow, Versioned, table=True):
    __tablename__ = "resources"
    __table_args__ = (
        sa.Index("ix_resources_listing", "org_id", "category", "country", "name", "id"),
        sa.CheckConstraint(
            "category IN ('crisis', 'eap', 'professional', 'guide')", name="category_known"
        ),
    )

    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    category: str = Field(max_length=16)
    # ISO 3166-1 alpha-2; None means the resource applies everywhere.
    country: str | None = Field(default=None, max_length=2)
    url: str | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, max_length=50)
    hours: str | None = Field(default=None, max_length=200)
