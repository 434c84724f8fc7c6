"""allies.listed_announced: the listed state last announced to webhook subscribers

``ally.listed`` / ``ally.unlisted`` are sent once per flip of an ally's *listed* state,
whatever flips it (docs/webhooks.md). The announced state is stored per ally and changed only
by a conditional UPDATE, so two processes can never both announce the same flip.

Existing allies start with their current listed state (as of the migration's day), so the
upgrade itself announces nothing: subscribers already saw the approvals and pauses that led
there, and an ally whose training lapsed before the upgrade was never announced as unlisted
by the old rules; the new background check announces the flips that happen from now on.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# *Listed* as of today (allies/listing_repository.py), in SQL both databases run.
_LISTED = """
    status = 'active' AND accepting AND NOT EXISTS (
        SELECT 1 FROM training_courses c
        WHERE c.org_id = allies.org_id AND c.required AND NOT EXISTS (
            SELECT 1 FROM training_records r
            WHERE r.ally_id = allies.id AND r.course_id = c.id AND r.verified
              AND (r.expires_on IS NULL OR r.expires_on > {today})
        )
    )
"""


def upgrade() -> None:
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("listed_announced", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    postgres = op.get_bind().dialect.name == "postgresql"
    today = "(now() AT TIME ZONE 'UTC')::date" if postgres else "date('now')"
    op.execute(f"UPDATE allies SET listed_announced = ({_LISTED.format(today=today)})")  # noqa: S608 - constant SQL


def downgrade() -> None:
    with op.batch_alter_table("allies", schema=None) as batch_op:
        batch_op.drop_column("listed_announced")
