"""operations: owned webhooks, rate-limit policies

- webhook subscriptions record the integration client that owns them (per-request events for
  integration clients only);
- rate-limit buckets are per policy (``writes``, ``reads``); the table holds one minute of
  counts, so it is simply made again;
- ``ally_rank_bands``: the suggestions' periodic snapshot of each ally's load band.

Revision ID: 0011
Revises: 0007
Create Date: 2026-11-27 09:00:00.000000

Subscriptions made before owners were recorded cannot tell whether a coordinator or an
integration client created them, so they lose their per-request events (``contact_request.*``),
and the queued and logged deliveries of those events go: programme staff must not keep
receiving, or reading, a per-request stream. An integration client subscribes again to get
them back (docs/operations.md, "Upgrading").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PER_REQUEST_PREFIX = "contact_request."

_subscriptions = sa.table(
    "webhook_subscriptions",
    sa.column("id", sa.Uuid()),
    sa.column("events", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)
_deliveries = sa.table(
    "webhook_deliveries",
    sa.column("subscription_id", sa.Uuid()),
    sa.column("event_type", sa.String()),
)


def _strip_per_request_events() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(_subscriptions.c.id, _subscriptions.c.events)).all()
    for subscription_id, events in rows:
        kept = [event for event in events if not event.startswith(PER_REQUEST_PREFIX)]
        if kept != list(events):
            connection.execute(
                _subscriptions.update()
                .where(_subscriptions.c.id == subscription_id)
                .values(events=kept)
            )
    connection.execute(
        _deliveries.delete().where(_deliveries.c.event_type.startswith(PER_REQUEST_PREFIX))
    )


def _rate_limit_buckets(*, with_policy: bool) -> None:
    columns = [sa.Column("key", sa.String(length=64), nullable=False)]
    if with_policy:
        columns.append(sa.Column("policy", sa.String(length=16), nullable=False))
    columns += [
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    ]
    key = ["key", "policy", "window_start"] if with_policy else ["key", "window_start"]
    op.create_table(
        "rate_limit_buckets",
        *columns,
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_rate_limit_buckets")),
    )
    with op.batch_alter_table("rate_limit_buckets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rate_limit_buckets_window_start"), ["window_start"], unique=False
        )


def _drop_rate_limit_buckets() -> None:
    with op.batch_alter_table("rate_limit_buckets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_limit_buckets_window_start"))
    op.drop_table("rate_limit_buckets")


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_ref", sa.String(length=64), nullable=True))
    _strip_per_request_events()
    _drop_rate_limit_buckets()
    _rate_limit_buckets(with_policy=True)
    op.create_table(
        "ally_rank_bands",
        sa.Column("ally_id", sa.Uuid(), nullable=False),
        sa.Column("band", sa.SmallInteger(), nullable=False),
        sa.Column("tiebreak", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ally_id", name=op.f("pk_ally_rank_bands")),
    )


def downgrade() -> None:
    op.drop_table("ally_rank_bands")
    _drop_rate_limit_buckets()
    _rate_limit_buckets(with_policy=False)
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("owner_ref")
