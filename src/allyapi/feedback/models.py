"""Feedback tables (docs/privacy.md, P4 and P6; docs/aggregates.md).

What each row may and may not link to, and why:

- ``request_feedback``: one row per completed contact request (unique ``request_id``). It copies
  ``ally_id`` and ``topic`` so summaries aggregate without touching protected content. It does
  **not** store ``requester_ref``: the request row already links to the requester, and a second
  copy would survive in places the request's erasure and retention rules (P7) do not reach.
  Who counts as a new person in which cell is decided once, when the row arrives in the
  aggregates (``seq``, ``marks``: docs/aggregates.md).
- ``program_feedback``: anonymous programme feedback. No person, no request, no ally: only the
  org, a category, a rating, the sealed comment, the day it was given and its arrival.
- ``feedback_quotas``: one programme answer per person, category and calendar month, so every
  row of a (month, category) cell is a different person and k counts people there too. Its
  key is ``subject_ref(pseudonym key, "feedback:<month>:<category>", person)``: keyed HMAC, so
  a database dump cannot turn it back into a person, and a new value for every month and
  category, so a person's buckets cannot be linked to each other either. It has no foreign
  key, no row id shared with feedback and no timestamp at all (only the month, so past months
  can be deleted), which is why a quota row cannot be joined to the feedback row it allowed.
  Past months' rows are deleted when the org next writes programme feedback. The bucket is
  claimed in its own autocommit statement, never in the transaction that stores the feedback,
  so the two rows never share a transaction id (``xmin`` on PostgreSQL). Residual risk, stated
  plainly: someone with raw database access *and* the pseudonym key learns which categories a
  person answered this month, not what they answered (each cell holds k people or is hidden).

Every date is stored truncated to the day (``created_on``), never a timestamp: a time of day
would let someone holding other logs (badge, VPN, chat) match feedback to a person.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import ORG_ID_MAX, arrival_marks, arrival_seq

NOT_ARRIVED = sa.text("seq IS NULL")


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
        sa.Index(
            "ix_request_feedback_arriving",
            "org_id",
            postgresql_where=NOT_ARRIVED,
            sqlite_where=NOT_ARRIVED,
        ),
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
    seq: int | None = arrival_seq()
    marks: int = arrival_marks()


class ProgramFeedback(SQLModel, table=True):
    __tablename__ = "program_feedback"
    __table_args__ = (
        sa.Index("ix_program_feedback_report", "org_id", "created_on"),
        sa.Index(
            "ix_program_feedback_arriving",
            "org_id",
            postgresql_where=NOT_ARRIVED,
            sqlite_where=NOT_ARRIVED,
        ),
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
    seq: int | None = arrival_seq()
    marks: int = arrival_marks()


class FeedbackQuota(SQLModel, table=True):
    """The programme answer of one (unknowable) person in one category and month."""

    __tablename__ = "feedback_quotas"
    __table_args__ = (
        sa.Index("ix_feedback_quotas_org_period", "org_id", "period"),
        sa.CheckConstraint("used >= 0", name="used_not_negative"),
    )

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    bucket: str = Field(max_length=64, primary_key=True)
    # "2026-11": lets past months be deleted; coarser than the day, so it adds no timing.
    period: str = Field(max_length=8)
    used: int = Field(default=0)
