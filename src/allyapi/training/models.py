"""Training courses (the catalogue) and the records that keep allies listed."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from allyapi.core.db.models import TenantRow, Versioned, utc_column


class TrainingCourse(TenantRow, Versioned, table=True):
    __tablename__ = "training_courses"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "name", name="uq_training_courses_org_name"),
        sa.CheckConstraint(
            "validity_months IS NULL OR validity_months BETWEEN 1 AND 240", name="validity_range"
        ),
    )

    name: str = Field(max_length=200)
    provider: str | None = Field(default=None, max_length=200)
    # None: the course never expires.
    validity_months: int | None = Field(default=None)
    required: bool = Field(default=False)


class TrainingRecord(TenantRow, Versioned, table=True):
    __tablename__ = "training_records"
    __table_args__ = (
        # NULL external ids do not collide; LMS/HRIS ids are unique within an org.
        sa.UniqueConstraint("org_id", "external_id", name="uq_training_records_org_external"),
        sa.Index("ix_training_records_listing", "ally_id", "course_id", "verified", "expires_on"),
    )

    ally_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("allies.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    course_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("training_courses.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    completed_on: date
    # completed_on + validity_months; the record is current while today < expires_on.
    expires_on: date | None = Field(default=None)
    verified: bool = Field(default=False)
    evidence_ref: str | None = Field(default=None, max_length=500)
    external_id: str | None = Field(default=None, max_length=200)
    verified_at: datetime | None = utc_column(nullable=True)
