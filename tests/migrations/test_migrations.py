"""Alembic is the schema's only source: every migration goes up and down cleanly, and the
migrated schema is exactly what the table models describe (``alembic check`` in a test).

Runs on the leg's own database kind (SQLite file or a fresh PostgreSQL database), so a
migration that only works on one of them fails here. New migrations need no new test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from allyapi.core.db.migrations import alembic_config, downgrade, upgrade
from allyapi.core.db.session import make_engine
from allyapi.tables import metadata
from tests.migrations.scratch import scratch_database

VERSION_TABLE = "alembic_version"


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    with scratch_database(tmp_path) as url:
        yield url


def _on_connection(url: str, work: Any) -> Any:
    async def run() -> Any:
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def tables(url: str) -> set[str]:
    return set(_on_connection(url, lambda sync: inspect(sync).get_table_names()))


def current(url: str) -> str | None:
    return _on_connection(url, lambda sync: MigrationContext.configure(sync).get_current_revision())


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, "two migrations claim the same parent: rebase one"
    assert len(script.get_bases()) == 1


def test_empty_to_head_to_base_to_head(scratch_url: str) -> None:
    model_tables = set(metadata.tables)
    upgrade(scratch_url)
    assert tables(scratch_url) == model_tables | {VERSION_TABLE}
    assert current(scratch_url) == revisions()[-1]

    downgrade(scratch_url, "base")
    assert tables(scratch_url) - {VERSION_TABLE} == set()
    assert current(scratch_url) is None

    upgrade(scratch_url)
    assert tables(scratch_url) == model_tables | {VERSION_TABLE}


def test_every_migration_steps_down_and_up_again(scratch_url: str) -> None:
    """The stairway: each revision's downgrade undoes exactly its own upgrade."""
    for revision in revisions():
        upgrade(scratch_url, revision)
        before = tables(scratch_url)
        downgrade(scratch_url, "-1")
        upgrade(scratch_url, revision)
        assert tables(scratch_url) == before, revision
        assert current(scratch_url) == revision


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def test_models_and_migrations_agree(scratch_url: str) -> None:
    upgrade(scratch_url)
    assert _on_connection(scratch_url, _diff) == []
