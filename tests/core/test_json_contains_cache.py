"""json_array_contains is cacheable and binds each call's value (bench/RESULTS.md).

Statements using it are compiled once and reused: a value baked into the cached SQL would make
every later filter answer the first caller's language, on both databases.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.core.db.models import json_array_contains

ORG = f"cache-{uuid.uuid4().hex[:8]}"


def _ally(name: str, languages: list[str]) -> Ally:
    return Ally(org_id=ORG, subject_ref=uuid.uuid4().hex, display_name=name, languages=languages,
                topics=[], contact_channels=[], availability=[])  # fmt: skip


async def _names(session: AsyncSession, language: str) -> list[str]:
    query = (
        sa.select(col(Ally.display_name))
        .where(col(Ally.org_id) == ORG, json_array_contains(col(Ally.languages), language))
        .order_by(col(Ally.display_name))
    )
    return list((await session.execute(query)).scalars())


def test_statement_has_a_cache_key() -> None:
    first = sa.select(col(Ally.id)).where(json_array_contains(col(Ally.languages), "en"))
    second = sa.select(col(Ally.id)).where(json_array_contains(col(Ally.languages), "fr"))
    assert first._generate_cache_key() == second._generate_cache_key()


async def test_cached_statement_binds_each_value(session: AsyncSession) -> None:
    session.add_all([_ally("Ana", ["en"]), _ally("Bo", ["fr"]), _ally("Cy", ["en", "fr"])])
    await session.flush()
    assert await _names(session, "en") == ["Ana", "Cy"]
    assert await _names(session, "fr") == ["Bo", "Cy"]
    assert await _names(session, "de") == []
