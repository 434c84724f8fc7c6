"""contact requests, thread, access log, loads, idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:25:46.834056
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("caller_ref", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "caller_ref", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "requester_loads",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("requester_ref", sa.String(length=64), nullable=False),
        sa.Column("open_requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "requester_ref", name=op.f("pk_requester_loads")),
    )
    op.create_table(
        "contact_requests",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requester_ref", sa.String(length=64), nullable=False),
        sa.Column("ally_id", sa.Uuid(), nullable=True),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("urgency", sa.String(length=8), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("preferred_channel", sa.String(length=16), nullable=True),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_sealed", sa.Text(), nullable=True),
        sa.Column("contact_detail_sealed", sa.Text(), nullable=True),
        sa.Column("alias_sealed", sa.Text(), nullable=True),
        sa.Column(
            "declined_by", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("decline_reason", sa.String(length=32), nullable=True),
        sa.Column("signposted", sa.Boolean(), nullable=True),
        sa.Column(
            "signposted_resource_ids",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("follow_up", sa.Boolean(), nullable=True),
        sa.Column("wellbeing", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_purge_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'completed', 'cancelled', 'expired')",
            name=op.f("ck_contact_requests_status_known"),
        ),
        sa.CheckConstraint(
            "urgency IN ('low', 'normal', 'high')", name=op.f("ck_contact_requests_urgency_known")
        ),
        sa.CheckConstraint(
            "wellbeing IS NULL OR wellbeing BETWEEN 1 AND 5",
            name=op.f("ck_contact_requests_wellbeing_range"),
        ),
        sa.ForeignKeyConstraint(
            ["ally_id"],
            ["allies.id"],
            name=op.f("fk_contact_requests_ally_id_allies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_requests")),
    )
    with op.batch_alter_table("contact_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_requests_ally", ["ally_id", "status", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_contact_requests_expiry", ["status", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_requests_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_contact_requests_purge", ["content_purge_at"], unique=False)
        batch_op.create_index("ix_contact_requests_report", ["org_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_contact_requests_requester",
            ["org_id", "requester_ref", "created_at", "id"],
            unique=False,
        )
    op.create_table(
        "contact_access_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("accessor_ally_id", sa.Uuid(), nullable=True),
        sa.Column("accessor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["contact_requests.id"],
            name=op.f("fk_contact_access_log_request_id_contact_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_access_log")),
    )
    with op.batch_alter_table("contact_access_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_access_log_request", ["request_id", "accessed_at", "id"], unique=False
        )
    op.create_table(
        "contact_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("author", sa.String(length=10), nullable=False),
        sa.Column("body_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["contact_requests.id"],
            name=op.f("fk_contact_messages_request_id_contact_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_messages")),
    )
    with op.batch_alter_table("contact_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_messages_thread", ["request_id", "created_at", "id"], unique=False
        )

    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("open_requests", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_check_constraint("load_not_negative", "open_requests >= 0")


def downgrade() -> None:
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_allies_load_not_negative"), type_="check")
        batch_op.drop_column("open_requests")

    with op.batch_alter_table("contact_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_messages_thread")
    op.drop_table("contact_messages")
    with op.batch_alter_table("contact_access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_access_log_request")
    op.drop_table("contact_access_log")
    with op.batch_alter_table("contact_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_requests_requester")
        batch_op.drop_index("ix_contact_requests_report")
        batch_op.drop_index("ix_contact_requests_purge")
        batch_op.drop_index(batch_op.f("ix_contact_requests_org_id"))
        batch_op.drop_index("ix_contact_requests_expiry")
        batch_op.drop_index("ix_contact_requests_ally")
    op.drop_table("contact_requests")
    op.drop_table("requester_loads")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))
    op.drop_table("idempotency_keys")
