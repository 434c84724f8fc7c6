"""Ally profiles. The ally's identity is kept as a keyed reference, never the raw ``sub``."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import (
    ORG_ID_MAX,
    TenantRow,
    Versioned,
    json_column,
    table_of,
    utc_column,
)


class AllyStatus(StrEnum):
    applied = "applied"
    active = "active"
    paused = "paused"
    retired = "retired"


class PausedBy(StrEnum):
    """Who paused a ``paused`` ally: the ally (theirs to lift) or a coordinator (a suspension
    only a coordinator lifts). Set exactly when the status is ``paused``."""

    ally = "ally"
    coordinator = "coordinator"


# A paused ally names who paused them; any other status names nobody. (Spelled out with IS NOT
# NULL: a CHECK that evaluates to NULL passes.)
PAUSED_BY_RULE = (
    "(status = 'paused' AND paused_by IS NOT NULL AND paused_by IN ('ally', 'coordinator'))"
    " OR (status <> 'paused' AND paused_by IS NULL)"
)


class Ally(TenantRow, Versioned, table=True):
    __tablename__ = "allies"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "subject_ref", name="uq_allies_org_subject"),
        sa.Index("ix_allies_directory", "org_id", "status", "display_name", "id"),
        sa.CheckConstraint("max_open_requests BETWEEN 1 AND 50", name="capacity_range"),
        sa.CheckConstraint("open_requests >= 0", name="load_not_negative"),
        sa.CheckConstraint(
            "status IN ('applied', 'active', 'paused', 'retired')", name="status_known"
        ),
        sa.CheckConstraint(PAUSED_BY_RULE, name="paused_by_matches_status"),
    )

    # HMAC("ally|org:sub") under the pseudonym key: links the profile to its owner's token
    # without storing the sub (docs/privacy.md, P1: an ally may also ask for help one day).
    subject_ref: str = Field(max_length=64)
    display_name: str = Field(max_length=100)
    pronouns: str | None = Field(default=None, max_length=40)
    job_title: str | None = Field(default=None, max_length=100)
    department: str | None = Field(default=None, max_length=100)
    location: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    languages: list[str] = json_column()
    topics: list[str] = json_column()
    bio: str | None = Field(default=None, max_length=2000)
    contact_channels: list[dict[str, Any]] = json_column()
    availability: list[dict[str, Any]] = json_column()
    accepting: bool = Field(default=True)
    status: str = Field(default=AllyStatus.applied, max_length=16)
    paused_by: str | None = Field(default=None, max_length=16)
    max_open_requests: int = Field(default=3)
    # Open (pending or accepted) contact requests assigned to the ally: the ally's load.
    # Changed only by conditional UPDATEs in contact_requests, so capacity holds under races.
    open_requests: int = Field(default=0)
    # Lower-cased text the directory's ``q`` searches: name, job title, bio, topics, location.
    search_text: str = Field(default="", max_length=4000)
    # Department as sent in tokens, lower-cased, for the "not in my reporting line" rule.
    department_key: str | None = Field(default=None, max_length=100)
    # The listed state last announced to webhook subscribers (``ally.listed``/``unlisted``):
    # changed only by allies/announcements.py's conditional UPDATE, so each flip of *listed*
    # is announced once, whichever process or job notices it first.
    listed_announced: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    approved_at: datetime | None = utc_column(nullable=True)
    retired_at: datetime | None = utc_column(nullable=True)

    def __repr__(self) -> str:
        return f"Ally(id={self.id}, status={self.status})"


# The suggestions' load snapshot (allies/ranking.py): ``band`` 0 below half the capacity, 1
# from half on, FULL at capacity (not suggested).
FULL = 2


class AllyRankBand(SQLModel, table=True):
    """The snapshot the suggestions rank by (one row per ally, written by the refresh only)."""

    __tablename__ = "ally_rank_bands"

    # No foreign key on purpose: checking one takes a KEY SHARE lock on the ally's row for
    # the refresh's transaction, and matching claims ally rows FOR UPDATE; the snapshot must
    # never make a claim wait or skip. Allies are retired, never deleted; a row whose ally is
    # gone joins nothing.
    ally_id: uuid.UUID = Field(primary_key=True)
    band: int = Field(sa_type=sa.SmallInteger)
    tiebreak: int = Field(sa_type=sa.BigInteger)
    # Refresh period it was taken in: floor(database time / period); each period once.
    epoch: int = Field(sa_type=sa.BigInteger)


BANDS = table_of(AllyRankBand)


class DirectoryGeneration(SQLModel, table=True):
    """Bumped by database triggers (migration 0016) in the same transaction as any change to
    what an organisation's directory shows: the version its cached pages are keyed by."""

    __tablename__ = "directory_generations"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    generation: int = Field(sa_type=sa.BigInteger)


class AllyWindow(SQLModel, table=True):
    """One weekly availability window of an ally, in minutes of the ally's own day.

    Derived from the profile's ``availability`` and ``timezone`` on every write of either
    (allies/availability.py), so the directory can filter by "available at" in SQL. An ally
    without a timezone has no rows: their windows name no instant. ``timezone`` is repeated
    on each row so the filter needs no join to ``allies``.
    """

    __tablename__ = "ally_windows"
    __table_args__ = (
        sa.Index("ix_ally_windows_org_timezone", "org_id", "timezone"),
        sa.CheckConstraint("weekday BETWEEN 1 AND 7", name="weekday_range"),
        sa.CheckConstraint(
            "start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440",
            name="minutes_range",
        ),
    )

    # The key is the window itself: the same window listed twice is stored once.
    ally_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("allies.id", ondelete="CASCADE"), primary_key=True
        )
    )
    weekday: int = Field(sa_type=sa.SmallInteger, primary_key=True)  # ISO, 1 = Monday
    start_minute: int = Field(sa_type=sa.SmallInteger, primary_key=True)  # inclusive
    end_minute: int = Field(sa_type=sa.SmallInteger, primary_key=True)  # exclusive; 1440
    org_id: str = Field(max_length=ORG_ID_MAX)
    timezone: str = Field(max_length=64)
