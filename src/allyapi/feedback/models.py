"""Feedback tables (SPEC §3 Feedback, P4, P6).

What each row may and may not link to, and why:

- ``request_feedback``: one row per completed contact request (unique ``request_id``). It copies
  ``ally_id`` and ``topic`` so summaries aggregate without touching protected content. It does
  **not** store ``requester_ref``: the request row already links to the requester, and a second
  copy would survive in places the request's erasure and retention rules (P7) do not reach.
  Summaries count distinct requesters through the join to ``contact_requests``.
- ``program_feedback``: anonymous programme feedback. No person, no request, no ally: only the
  org, a category, a rating, the sealed comment and the day it was given.
- ``feedback_quotas``: the per-person weekly limit on programme feedback. Its key is
  ``subject_ref(pseudonym key, "feedback:<ISO week>", person)``: keyed HMAC, so a database
  dump cannot turn it back into a person, and a new value every week, so buckets of different
  weeks cannot be linked to each other either. It has no foreign key, no row id shared with
  feedback and no timestamp at all (only the ISO week, so past weeks can be deleted), which is
  why a quota row cannot be joined to the feedback row it allowed. Past weeks' quota rows are
deleted when the org next writes programme feedback. Residual risk, stated plainly: on
PostgreSQL the quota row and the feedback row are written in one transaction and share its
system transaction id (``xmin``) until the quota row is next updated or deleted; someone with
raw database access *and* the pseudonym key could use that to match this week's last entry.
The key never lives in the database, which is the boundary this design relies on.

Every date is stored truncated to the day (``created_on``), never a timestamp: a time of day
would let someone holding other logs (badge, VPN, chat) match feedback to a person.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.models import ORG_ID_MAX


class FeedbackCategory(StrEnum):
    programme = "programme"
    training = "training"
    resources = "resources"
    accessibility = "accessibility"
    other = "other"


class RequestFeedback(SQLModel, table=True):
    __tablename__ = "request_feedback"
    __table_args__ = (
        sa.UniqueConstraint("request_id", name="uq_request_feedback_request_id"),
        sa.Index("ix_request_feedback_report", "org_id", "created_on"),
        sa.Index("ix_request_feedback_ally", "org_id", "ally_id", "created_on"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: str = Field(max_length=ORG_ID_MAX)
    request_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("contact_requests.id", ondelete="CASCADE"), nullable=False
        )
    )
    # Copied from the request for aggregation; the ally may later be retired or deleted.
    ally_id: uuid.UUID | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("allies.id", ondelete="SET NULL"), nullable=True
        ),
    )
    topic: str = Field(max_length=64)
    rating: int
    felt_heard: bool
    would_recommend: bool
    # P4: aad = aad_for("request_feedback", id, "comment").
    comment_sealed: str | None = Field(default=None, sa_type=sa.Text)
    created_on: date


class ProgramFeedback(SQLModel, table=True):
    __tablename__ = "program_feedback"
    __table_args__ = (
        sa.Index("ix_program_feedback_report", "org_id", "created_on"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        sa.CheckConstraint(
            "category IN ('programme', 'training', 'resources', 'accessibility', 'other')",
            name="category_known",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: str = Field(max_length=ORG_ID_MAX)
    category: str = Field(max_length=16)
    rating: int
    # P4: aad = aad_for("program_feedback", id, "comment").
    comment_sealed: str | None = Field(default=None, sa_type=sa.Text)
    created_on: date


class FeedbackQuota(SQLModel, table=True):
    """Programme feedback given by one (unknowable) person in one ISO week."""

    __tablename__ = "feedback_quotas"
    __table_args__ = (
        sa.Index("ix_feedback_quotas_org_week", "org_id", "week"),
        sa.CheckConstraint("used >= 0", name="used_not_negative"),
    )

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    bucket: str = Field(max_length=64, primary_key=True)
    # "2026-W48": lets past weeks be deleted; coarser than the day, so it adds no timing.
    week: str = Field(max_length=8)
    used: int = Field(default=0)
