"""Alembic, driven from code: ``allyapi migrate``, ``serve`` and ``/readyz`` share this."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_PACKAGE = Path(__file__).resolve().parents[2]


def script_location() -> Path:
    """The repository's ``alembic/`` (source checkout), else the copy packed into the wheel."""
    for candidate in (_PACKAGE.parents[1] / "alembic", _PACKAGE / "_alembic"):
        if (candidate / "env.py").exists():
            return candidate
    raise RuntimeError("alembic scripts not found")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return ScriptDirectory.from_config(config).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT version_num FROM alembic_version"))
        row = result.first()
        return str(row[0]) if row else None
