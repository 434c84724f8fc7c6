"""feedback: request feedback, anonymous programme feedback, weekly quota buckets; report cell cache

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-25 21:32:31.682260
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_quotas",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("bucket", sa.String(length=64), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_feedback_quotas_used_not_negative")),
        sa.PrimaryKeyConstraint("org_id", "bucket", name=op.f("pk_feedback_quotas")),
    )
    with op.batch_alter_table("feedback_quotas", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_quotas_org_week", ["org_id", "week"], unique=False)

    op.create_table(
        "program_feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment_sealed", sa.Text(), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.CheckConstraint(
            "category IN ('programme', 'training', 'resources', 'accessibility', 'other')",
            name=op.f("ck_program_feedback_category_known"),
        ),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_program_feedback_rating_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_feedback")),
    )
    with op.batch_alter_table("program_feedback", schema=None) as batch_op:
        batch_op.create_index("ix_program_feedback_report", ["org_id", "created_on"], unique=False)

    op.create_table(
        "request_feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("ally_id", sa.Uuid(), nullable=True),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("felt_heard", sa.Boolean(), nullable=False),
        sa.Column("would_recommend", sa.Boolean(), nullable=False),
        sa.Column("comment_sealed", sa.Text(), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_request_feedback_rating_range")),
        sa.ForeignKeyConstraint(
            ["ally_id"],
            ["allies.id"],
            name=op.f("fk_request_feedback_ally_id_allies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["contact_requests.id"],
            name=op.f("fk_request_feedback_request_id_contact_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_feedback")),
        sa.UniqueConstraint("request_id", name="uq_request_feedback_request_id"),
    )
    with op.batch_alter_table("request_feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_feedback_ally", ["org_id", "ally_id", "created_on"], unique=False
        )
        batch_op.create_index("ix_request_feedback_report", ["org_id", "created_on"], unique=False)
    op.create_table(
        "report_cells",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("breakdown", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "cells", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "interval", "breakdown", "bucket", name=op.f("pk_report_cells")
        ),
    )


def downgrade() -> None:
    op.drop_table("report_cells")
    with op.batch_alter_table("request_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_request_feedback_report")
        batch_op.drop_index("ix_request_feedback_ally")

    op.drop_table("request_feedback")
    with op.batch_alter_table("program_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_program_feedback_report")

    op.drop_table("program_feedback")
    with op.batch_alter_table("feedback_quotas", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_quotas_org_week")

    op.drop_table("feedback_quotas")
