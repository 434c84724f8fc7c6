"""Upgrading to 0012 starts every ally at their current *listed* state, so the upgrade itself
announces nothing: the listed allies (active, accepting, every required course current) are
marked announced as listed, everyone else as unlisted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from allyapi.core.db.migrations import upgrade
from allyapi.core.db.session import make_engine
from tests.migrations.scratch import scratch_database

TODAY = datetime.now(UTC).date()


def _value(column: sa.Column[Any]) -> Any:
    """Any valid value for a NOT NULL column the test does not care about."""
    kind = column.type
    if isinstance(kind, sa.Uuid):
        return uuid.uuid4()
    if column.name == "id":  # SQLite reflects a UUID column as CHAR(32): its stored form
        return uuid.uuid4().hex
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return 3
    if isinstance(kind, sa.DateTime):
        return datetime.now(UTC)
    if isinstance(kind, sa.Date):
        return TODAY
    if isinstance(kind, sa.JSON):
        return []
    return "x"


async def _insert(connection: Any, table: sa.Table, **values: Any) -> Any:
    """Insert a row; its id as stored (a UUID, or its hex form on SQLite)."""
    row = {c.name: _value(c) for c in table.c if not c.nullable and c.server_default is None}
    row.update(values)
    await connection.execute(table.insert().values(row))
    return row["id"]


async def _write_allies(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            meta = sa.MetaData()
            await connection.run_sync(
                lambda sync: meta.reflect(
                    sync, only=["allies", "training_courses", "training_records"]
                )
            )
            allies, courses, records = (
                meta.tables[name] for name in ("allies", "training_courses", "training_records")
            )
            made = {}
            for name, org, status, accepting in (
                ("listed", "no-courses", "active", True),
                ("not_accepting", "no-courses", "active", False),
                ("applied", "no-courses", "applied", True),
                ("untrained", "with-course", "active", True),
                ("trained", "with-course", "active", True),
                ("lapsed", "with-course", "active", True),
            ):
                made[name] = await _insert(
                    connection,
                    allies,
                    org_id=org,
                    subject_ref=name,
                    status=status,
                    accepting=accepting,
                    paused_by=None,
                    open_requests=0,
                )
            course = await _insert(connection, courses, org_id="with-course", required=True)
            for name, expires in (("trained", TODAY + timedelta(days=30)), ("lapsed", TODAY)):
                await _insert(
                    connection,
                    records,
                    org_id="with-course",
                    ally_id=made[name],
                    course_id=course,
                    completed_on=date(2025, 1, 1),
                    expires_on=expires,
                    verified=True,
                    external_id=None,
                )
            return made
    finally:
        await engine.dispose()


async def _announced(url: str) -> dict[uuid.UUID, bool]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT id, listed_announced FROM allies"))
            return {uuid.UUID(str(ally_id)): bool(flag) for ally_id, flag in rows}
    finally:
        await engine.dispose()


def test_the_upgrade_starts_every_ally_at_their_listed_state(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as url:
        upgrade(url, "0011")
        made = asyncio.run(_write_allies(url))
        upgrade(url, "0012")
        announced = asyncio.run(_announced(url))
    listed = {name for name, ally_id in made.items() if announced[uuid.UUID(str(ally_id))]}
    assert listed == {"listed", "trained"}
