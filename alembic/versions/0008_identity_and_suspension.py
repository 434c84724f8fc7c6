"""allies.paused_by: a coordinator's pause is a suspension the ally cannot lift

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 10:30:00.000000

Allies paused before this revision are recorded as paused by a coordinator: who paused them
is unknown, and treating an unknown pause as a suspension errs on the safe side (a
coordinator lifts it; the ally cannot lift what may have been a coordinator's decision).

References to people change form for issuers other than the legacy one (docs/identity.md),
which needs no schema change: the legacy issuer's references stay exactly as stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAUSED_BY_RULE = (
    "(status = 'paused' AND paused_by IS NOT NULL AND paused_by IN ('ally', 'coordinator'))"
    " OR (status <> 'paused' AND paused_by IS NULL)"
)


def upgrade() -> None:
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_by", sa.String(length=16), nullable=True))
    op.execute("UPDATE allies SET paused_by = 'coordinator' WHERE status = 'paused'")
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_allies_paused_by_matches_status"), sa.text(PAUSED_BY_RULE)
        )


def downgrade() -> None:
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_allies_paused_by_matches_status"), type_="check")
        batch_op.drop_column("paused_by")
