"""directory_generations: a per-organisation counter every change to the directory bumps

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 13:40:00.000000

Directory pages are cached in each server process (allies/directory_cache.py). Triggers on
``allies``, ``training_courses`` and ``training_records`` bump the organisation's counter in
the same transaction as the change, whatever code made it, and on PostgreSQL announce it with
``pg_notify('allyapi_directory', '<org> <generation>')``, delivered to every process at
commit. Ally updates that change nothing the directory shows or filters on (an ally's load,
``open_requests``, moved by every contact request) do not fire.

SQLite: a later migration that rebuilds ``allies`` or the training tables with
``batch_alter_table`` drops their triggers and must create them again (``create_triggers``).
A later migration that adds a column the directory shows recreates them with it
(``create_triggers(SHOWN + (...))``), or other processes hear of its changes only at the TTL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("allies", "training_courses", "training_records")
# What the directory shows, filters on or decides *listed* from (allies/schemas.py,
# allies/listing_repository.py). Not open_requests, updated_at or version alone.
SHOWN = (
    "org_id", "display_name", "pronouns", "job_title", "department", "location", "timezone",
    "languages", "topics", "bio", "contact_channels", "availability", "accepting", "status",
    "paused_by", "max_open_requests", "search_text", "approved_at", "created_at",
)  # fmt: skip
CHANNEL = "allyapi_directory"  # core/db/directory_cache.py listens on it

_PG_FUNCTION = """
CREATE FUNCTION allyapi_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    org text;
    bumped bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN org := OLD.org_id; ELSE org := NEW.org_id; END IF;
    INSERT INTO directory_generations (org_id, generation) VALUES (org, 1)
        ON CONFLICT (org_id)
        DO UPDATE SET generation = directory_generations.generation + 1
        RETURNING generation INTO bumped;
    PERFORM pg_notify('allyapi_directory', org || ' ' || bumped);
    RETURN NULL;
END
$$
"""


def _changed(old: str, new: str, shown: Sequence[str]) -> str:
    return " OR ".join(f"{old}.{c} IS DISTINCT FROM {new}.{c}" for c in shown)


def _sqlite_changed(shown: Sequence[str]) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in shown)


def create_triggers(shown: Sequence[str] = SHOWN) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in TABLES:
            when = f" WHEN ({_changed('OLD', 'NEW', shown)})" if table == "allies" else ""
            op.execute(
                f"CREATE TRIGGER {table}_directory_update AFTER UPDATE ON {table} "
                f"FOR EACH ROW{when} EXECUTE FUNCTION allyapi_directory_changed()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_directory_insert_delete AFTER INSERT OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION allyapi_directory_changed()"
            )
        return
    bump = (
        "INSERT OR IGNORE INTO directory_generations (org_id, generation) VALUES ({row}.org_id, 0);"
        " UPDATE directory_generations SET generation = generation + 1"
        " WHERE org_id = {row}.org_id;"
    )
    for table in TABLES:
        when = f" WHEN {_sqlite_changed(shown)}" if table == "allies" else ""
        for event, row in (("INSERT", "NEW"), ("DELETE", "OLD"), ("UPDATE", "NEW")):
            op.execute(
                f"CREATE TRIGGER {table}_directory_{event.lower()} AFTER {event} ON {table} "
                f"FOR EACH ROW{when if event == 'UPDATE' else ''} "
                f"BEGIN {bump.format(row=row)} END"
            )


def drop_triggers() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        names = ("update", "insert_delete") if postgres else ("insert", "delete", "update")
        for name in names:
            suffix = f" ON {table}" if postgres else ""
            op.execute(f"DROP TRIGGER IF EXISTS {table}_directory_{name}{suffix}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS allyapi_directory_changed()")


def upgrade() -> None:
    op.create_table(
        "directory_generations",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_directory_generations")),
    )
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    op.drop_table("directory_generations")
