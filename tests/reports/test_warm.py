"""The report-cell warmer fills settled cells off the request path and renews stale ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.core.database import Database
from allyapi.core.settings import Settings
from allyapi.reports.cells import CellSource
from allyapi.reports.models import ReportCellCache
from allyapi.reports.warm import warm_report_cells
from tests.feedback.factories import contact_request
from tests.helpers import ORG, TokenFactory
from tests.reports.test_program_report import MONDAY, get

OLD_MONDAY = MONDAY - timedelta(weeks=10)
OLD = datetime.combine(OLD_MONDAY + timedelta(days=1), time(9), tzinfo=UTC)


async def _cells(session: AsyncSession) -> list[tuple[str, str, datetime]]:
    await session.rollback()
    rows = await session.execute(
        sa.select(
            col(ReportCellCache.interval),
            col(ReportCellCache.breakdown),
            col(ReportCellCache.computed_at),
        ).where(col(ReportCellCache.org_id) == ORG)
    )
    return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def test_warming_fills_settled_cells_and_reports_then_compute_only_recent_ones(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    arrive: Callable[[], Awaitable[int]],
) -> None:
    for index in range(5):
        await contact_request(session, tokens, f"old-{index}", created_at=OLD)
    await arrive()

    assert await warm_report_cells(database, settings) == 6  # 2 intervals x 3 breakdowns
    stored = await _cells(session)
    # Keys name the rule and k ("r2:k5"), then the breakdown ("urgency", "topic:<groups>").
    assert {(interval, ":".join(key.split(":")[2:3])) for interval, key, _ in stored} == {
        (interval, breakdown)
        for interval in ("week", "month")
        for breakdown in ("", "urgency", "topic")
    }

    computed_from: list[object] = []
    original = CellSource._compute

    async def spy(self: CellSource, org: str, start, end, ask):  # type: ignore[no-untyped-def]
        computed_from.append(start)
        return await original(self, org, start, end, ask)

    monkeypatch.setattr(CellSource, "_compute", spy)
    report = await get(client, f"from={OLD_MONDAY}&to={OLD_MONDAY}", tokens.analyst)
    assert report["periods"][0]["total"]["requests_created"] == {"value": 5, "suppressed": False}
    assert computed_from == []  # the settled week came from the warmed cache


async def test_a_second_pass_renews_nothing_fresh_and_stale_cells_are_renewed(
    tokens: TokenFactory, session: AsyncSession, database: Database, settings: Settings
) -> None:
    await contact_request(session, tokens, "old-0", created_at=OLD)
    await warm_report_cells(database, settings)
    first = sorted(await _cells(session))
    await warm_report_cells(database, settings)
    assert sorted(await _cells(session)) == first

    stale = datetime.now(UTC) - timedelta(hours=13)
    await session.execute(sa.update(ReportCellCache).values(computed_at=stale))
    await session.commit()
    await warm_report_cells(database, settings)
    assert all(computed_at > stale for _, _, computed_at in await _cells(session))
