"""availability: allies' weekly windows as rows, for "available at" in SQL

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 13:40:00.000000

Each window of an ally's ``availability`` becomes a row (weekday, start and end minute, the
ally's timezone), so the directory can filter by availability inside its statement. Existing
profiles are copied over; allies without a timezone get no rows (never "available").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_allies = sa.table(
    "allies",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.String()),
    sa.column("timezone", sa.String()),
    sa.column("availability", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)
_windows = sa.table(
    "ally_windows",
    sa.column("ally_id", sa.Uuid()),
    sa.column("weekday", sa.SmallInteger()),
    sa.column("start_minute", sa.SmallInteger()),
    sa.column("end_minute", sa.SmallInteger()),
    sa.column("org_id", sa.String()),
    sa.column("timezone", sa.String()),
)


def upgrade() -> None:
    op.create_table(
        "ally_windows",
        sa.Column("ally_id", sa.Uuid(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("start_minute", sa.SmallInteger(), nullable=False),
        sa.Column("end_minute", sa.SmallInteger(), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.CheckConstraint("weekday BETWEEN 1 AND 7", name=op.f("ck_ally_windows_weekday_range")),
        sa.CheckConstraint(
            "start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440",
            name=op.f("ck_ally_windows_minutes_range"),
        ),
        sa.ForeignKeyConstraint(
            ["ally_id"],
            ["allies.id"],
            name=op.f("fk_ally_windows_ally_id_allies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "ally_id", "weekday", "start_minute", "end_minute", name=op.f("pk_ally_windows")
        ),
    )
    with op.batch_alter_table("ally_windows", schema=None) as batch_op:
        batch_op.create_index("ix_ally_windows_org_timezone", ["org_id", "timezone"], unique=False)
    _copy_existing_windows()


def _minute(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _copy_existing_windows() -> None:
    connection = op.get_bind()
    query = sa.select(_allies).where(_allies.c.timezone.is_not(None))
    rows: dict[tuple[object, int, int, int], dict[str, object]] = {}
    for ally in connection.execute(query).all():
        for window in ally.availability or []:
            start, end = _minute(window["start"]), _minute(window["end"])
            if start < end:
                key = (ally.id, int(window["weekday"]), start, end)
                rows[key] = {
                    "ally_id": ally.id,
                    "weekday": key[1],
                    "start_minute": start,
                    "end_minute": end,
                    "org_id": ally.org_id,
                    "timezone": ally.timezone,
                }
    if rows:
        connection.execute(_windows.insert(), list(rows.values()))


def downgrade() -> None:
    with op.batch_alter_table("ally_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_ally_windows_org_timezone")
    op.drop_table("ally_windows")
