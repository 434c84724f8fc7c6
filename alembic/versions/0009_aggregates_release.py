"""aggregates release: arrival order and marks, report topics, monthly programme answers

Existing rows arrive in the aggregates through the background arrival pass after the upgrade
(their figures are suppressed until then). Programme-feedback quota rows were per week; the
rule is now one answer per category and month, so the old rows are dropped. Cached report
cells hold figures under the old rule and are dropped too (recomputed on demand); they are
now valid while their bucket's arrival count is unchanged.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-27 10:10:47.456295
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARRIVING = sa.text(
    "created_seq IS NULL"
    " OR (accepted_at IS NOT NULL AND accepted_seq IS NULL)"
    " OR (status = 'completed' AND completed_seq IS NULL)"
    " OR (status = 'completed' AND wellbeing IS NOT NULL AND wellbeing_seq IS NULL)"
)
NOT_ARRIVED = sa.text("seq IS NULL")
LISTED = sa.text("retired_at IS NULL")
REQUEST_EVENTS = ("created", "accepted", "completed", "wellbeing")


def _marks(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "arrival_clocks",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "source", name=op.f("pk_arrival_clocks")),
    )
    op.create_table(
        "bucket_arrivals",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("bucket", sa.Date(), nullable=False),
        sa.Column("arrivals", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "interval", "bucket", name=op.f("pk_bucket_arrivals")),
    )
    op.create_table(
        "topics",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("listed_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
    )
    with op.batch_alter_table("topics", schema=None) as batch_op:
        batch_op.create_index("ix_topics_org_history", ["org_id", "listed_from"], unique=False)
        batch_op.create_index(batch_op.f("ix_topics_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            "uq_topics_listed_key",
            ["org_id", "key"],
            unique=True,
            postgresql_where=LISTED,
            sqlite_where=LISTED,
        )

    with op.batch_alter_table("contact_requests", schema=None) as batch_op:
        for event in REQUEST_EVENTS:
            batch_op.add_column(sa.Column(f"{event}_seq", sa.BigInteger(), nullable=True))
            batch_op.add_column(_marks(f"{event}_marks"))
        batch_op.add_column(sa.Column("accept_hours", sa.Float(), nullable=True))
        batch_op.create_index(
            "ix_contact_requests_arriving",
            ["org_id", "created_at"],
            unique=False,
            postgresql_where=ARRIVING,
            sqlite_where=ARRIVING,
        )

    for table in ("program_feedback", "request_feedback"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
            batch_op.add_column(_marks("marks"))
            batch_op.create_index(
                f"ix_{table}_arriving",
                ["org_id"],
                unique=False,
                postgresql_where=NOT_ARRIVED,
                sqlite_where=NOT_ARRIVED,
            )

    op.execute("DELETE FROM feedback_quotas")
    with op.batch_alter_table("feedback_quotas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("period", sa.String(length=8), nullable=False))
        batch_op.drop_index("ix_feedback_quotas_org_week")
        batch_op.create_index("ix_feedback_quotas_org_period", ["org_id", "period"], unique=False)
        batch_op.drop_column("week")
    op.execute("DELETE FROM report_cells")
    with op.batch_alter_table("report_cells", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("arrivals", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    op.execute("DELETE FROM report_cells")
    with op.batch_alter_table("report_cells", schema=None) as batch_op:
        batch_op.drop_column("arrivals")
    op.execute("DELETE FROM feedback_quotas")
    with op.batch_alter_table("feedback_quotas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("week", sa.String(length=8), nullable=False))
        batch_op.drop_index("ix_feedback_quotas_org_period")
        batch_op.create_index("ix_feedback_quotas_org_week", ["org_id", "week"], unique=False)
        batch_op.drop_column("period")

    for table in ("request_feedback", "program_feedback"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_arriving")
            batch_op.drop_column("marks")
            batch_op.drop_column("seq")

    with op.batch_alter_table("contact_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_requests_arriving")
        batch_op.drop_column("accept_hours")
        for event in reversed(REQUEST_EVENTS):
            batch_op.drop_column(f"{event}_marks")
            batch_op.drop_column(f"{event}_seq")

    with op.batch_alter_table("topics", schema=None) as batch_op:
        batch_op.drop_index("uq_topics_listed_key")
        batch_op.drop_index(batch_op.f("ix_topics_org_id"))
        batch_op.drop_index("ix_topics_org_history")
    op.drop_table("topics")
    op.drop_table("bucket_arrivals")
    op.drop_table("arrival_clocks")
