"""ally_accounts: the link between an ally profile and its identity provider's SCIM user

The SCIM id is the ally's id; ``userName`` and ``externalId`` are sealed under the data keys
(docs/scim.md). A profile removed from the database takes its link with it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ally_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("user_name_sealed", sa.Text(), nullable=False),
        sa.Column("external_id_sealed", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["id"], ["allies.id"], name=op.f("fk_ally_accounts_id_allies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ally_accounts")),
    )
    with op.batch_alter_table("ally_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ally_accounts_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ally_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ally_accounts_org_id"))
    op.drop_table("ally_accounts")
