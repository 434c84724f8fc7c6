"""foundation: allies, training, resources

Revision ID: 0001
Revises:
Create Date: 2026-11-25 21:21:40.334833
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "allies",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("pronouns", sa.String(length=40), nullable=True),
        sa.Column("job_title", sa.String(length=100), nullable=True),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("location", sa.String(length=100), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column(
            "languages", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "topics", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("bio", sa.String(length=2000), nullable=True),
        sa.Column(
            "contact_channels",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "availability", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("accepting", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("max_open_requests", sa.Integer(), nullable=False),
        sa.Column("search_text", sa.String(length=4000), nullable=False),
        sa.Column("department_key", sa.String(length=100), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('applied', 'active', 'paused', 'retired')",
            name=op.f("ck_allies_status_known"),
        ),
        sa.CheckConstraint(
            "max_open_requests BETWEEN 1 AND 50", name=op.f("ck_allies_capacity_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allies")),
        sa.UniqueConstraint("org_id", "subject_ref", name="uq_allies_org_subject"),
    )
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_allies_directory", ["org_id", "status", "display_name", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_allies_org_id"), ["org_id"], unique=False)
    op.create_table(
        "resources",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("hours", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "category IN ('crisis', 'eap', 'professional', 'guide')",
            name=op.f("ck_resources_category_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
    )
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.create_index(
            "ix_resources_listing", ["org_id", "category", "country", "name", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_resources_org_id"), ["org_id"], unique=False)
    op.create_table(
        "training_courses",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=True),
        sa.Column("validity_months", sa.Integer(), nullable=True),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "validity_months IS NULL OR validity_months BETWEEN 1 AND 240",
            name=op.f("ck_training_courses_validity_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_courses")),
        sa.UniqueConstraint("org_id", "name", name="uq_training_courses_org_name"),
    )
    with op.batch_alter_table("training_courses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_courses_org_id"), ["org_id"], unique=False)
    op.create_table(
        "training_records",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ally_id", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("evidence_ref", sa.String(length=500), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ally_id"],
            ["allies.id"],
            name=op.f("fk_training_records_ally_id_allies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["training_courses.id"],
            name=op.f("fk_training_records_course_id_training_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_records")),
        sa.UniqueConstraint("org_id", "external_id", name="uq_training_records_org_external"),
    )
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_records_ally_id"), ["ally_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_training_records_course_id"), ["course_id"], unique=False
        )
        batch_op.create_index(
            "ix_training_records_listing",
            ["ally_id", "course_id", "verified", "expires_on"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_training_records_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_records_org_id"))
        batch_op.drop_index("ix_training_records_listing")
        batch_op.drop_index(batch_op.f("ix_training_records_course_id"))
        batch_op.drop_index(batch_op.f("ix_training_records_ally_id"))
    op.drop_table("training_records")
    with op.batch_alter_table("training_courses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_courses_org_id"))
    op.drop_table("training_courses")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resources_org_id"))
        batch_op.drop_index("ix_resources_listing")
    op.drop_table("resources")
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allies_org_id"))
        batch_op.drop_index("ix_allies_directory")
    op.drop_table("allies")
