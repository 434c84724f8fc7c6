"""The organisation's report topics: the only groups a report's ``group_by=topic`` shows.

A row is one topic *as listed over a stretch of time*: ``listed_from`` is when a coordinator
added it, ``retired_at`` when one removed it. Rows are never deleted or re-dated, so the
groups of a period that has begun can never change (docs/aggregates.md, "Report groups").
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from allyapi.core.db.models import TenantRow, Versioned, utc_column

ACTIVE = sa.text("retired_at IS NULL")


class Topic(TenantRow, Versioned, table=True):
    __tablename__ = "topics"
    __table_args__ = (
        sa.Index("ix_topics_org_history", "org_id", "listed_from"),
        # One listed row per key; retired rows of the same key stay as history.
        sa.Index(
            "uq_topics_listed_key",
            "org_id",
            "key",
            unique=True,
            postgresql_where=ACTIVE,
            sqlite_where=ACTIVE,
        ),
    )

    key: str = Field(max_length=64)
    label: str | None = Field(default=None, max_length=100)
    listed_from: datetime = utc_column()
    retired_at: datetime | None = utc_column(nullable=True)
