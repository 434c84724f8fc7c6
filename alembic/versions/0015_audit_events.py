"""audit: the programme's own audit trail

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 14:00:00.000000

What coordinators and integration clients did (approvals, pauses, training, courses,
resources, webhooks, topics, roster syncs), kept ``ALLYAPI_AUDIT_RETENTION_DAYS``. Starts
empty: actions before this revision were not recorded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=256), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column(
            "changed", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.CheckConstraint(
            "actor_kind IN ('staff', 'integration')", name=op.f("ck_audit_events_actor_kind_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_purge", ["occurred_at"], unique=False)
        batch_op.create_index(
            "ix_audit_events_target", ["org_id", "target_type", "target_id"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_trail", ["org_id", "occurred_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_trail")
        batch_op.drop_index("ix_audit_events_target")
        batch_op.drop_index("ix_audit_events_purge")
    op.drop_table("audit_events")
