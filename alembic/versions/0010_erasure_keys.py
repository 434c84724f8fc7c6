"""erasure: per-request data keys, deliveries by request, idempotency keys by resource

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-27 10:16:38.471341
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_request_keys",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["contact_requests.id"],
            name=op.f("fk_contact_request_keys_request_id_contact_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_contact_request_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_resource_id"), ["resource_id"], unique=False
        )

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_request_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            "ix_webhook_deliveries_contact_request", ["contact_request_id"], unique=False
        )
    _backfill_delivery_requests()


def _backfill_delivery_requests() -> None:
    """Deliveries of per-request events written before this revision carry the request id in
    their body only; copy it into the new column so erasure and purge find them too."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE webhook_deliveries SET contact_request_id = "
            "(body::jsonb -> 'data' ->> 'contact_request_id')::uuid "
            "WHERE body::jsonb -> 'data' ->> 'contact_request_id' IS NOT NULL"
        )
    else:  # SQLite stores a UUID as 32 hex digits
        op.execute(
            "UPDATE webhook_deliveries SET contact_request_id = "
            "replace(json_extract(body, '$.data.contact_request_id'), '-', '') "
            "WHERE json_extract(body, '$.data.contact_request_id') IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_contact_request")
        batch_op.drop_column("contact_request_id")

    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_resource_id"))

    op.drop_table("contact_request_keys")
