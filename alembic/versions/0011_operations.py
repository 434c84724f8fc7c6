"""operations: owned webhook subscriptions (per-request events for integration clients only)

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
down_revision: str | None = "0007"
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


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_ref", sa.String(length=64), nullable=True))
    _strip_per_request_events()


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("owner_ref")
