"""The aggregates runner: contributions arrive, then the cells they changed are renewed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.aggregates import arrive_and_warm, warm_report_cells
from allyapi.reports.cells import CellSource
from allyapi.reports.models import ReportCellCache
from tests.feedback.factories import contact_request
from tests.helpers import ORG, TokenFactory
from tests.reports.test_program_report import MONDAY, WEDNESDAY, get

OLD_MONDAY = MONDAY - timedelta(weeks=10)
OLD = datetime.combine(OLD_MONDAY + timedelta(days=1), time(9), tzinfo=UTC)


async def _cells(session: AsyncSession) -> list[tuple[str, str, date, datetime]]:
    await session.rollback()
    rows = await session.execute(
        sa.select(
            col(ReportCellCache.interval),
            col(ReportCellCache.breakdown),
            col(ReportCellCache.bucket),
            col(ReportCellCache.computed_at),
        ).where(col(ReportCellCache.org_id) == ORG)
    )
    return [tuple(row) for row in rows.all()]  # type: ignore[misc]


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[date]:
    computed: list[date] = []
    original = CellSource._compute

    async def spy(self: CellSource, org: str, start, end, ask):  # type: ignore[no-untyped-def]
        computed.append(start)
        return await original(self, org, start, end, ask)

    monkeypatch.setattr(CellSource, "_compute", spy)
    return computed


async def test_warming_fills_the_default_ranges_and_reports_then_compute_nothing(
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
    assert {(interval, ":".join(key.split(":")[2:3])) for interval, key, _, _ in stored} == {
        (interval, breakdown)
        for interval in ("week", "month")
        for breakdown in ("", "urgency", "topic")
    }

    computed = _spy(monkeypatch)
    report = await get(client, f"from={OLD_MONDAY}&to={OLD_MONDAY}", tokens.analyst)
    assert report["periods"][0]["total"]["requests_created"] == {"value": 5, "suppressed": False}
    default = await get(client, "", tokens.analyst)
    assert len(default["periods"]) in (53, 54)
    assert computed == []  # everything came from the warmed cache


async def test_the_runner_renews_only_the_buckets_that_received_something(
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A completed request: its creation, acceptance and completion arrive.
    await contact_request(session, tokens, "old-0", created_at=OLD)
    assert await arrive_and_warm(database, settings) == 3
    first = {(i, k, b): at for i, k, b, at in await _cells(session)}
    assert await arrive_and_warm(database, settings) == 0  # nothing arrived, nothing renewed
    assert {(i, k, b): at for i, k, b, at in await _cells(session)} == first

    computed = _spy(monkeypatch)
    await contact_request(session, tokens, "new-0", created_at=WEDNESDAY)
    assert await arrive_and_warm(database, settings) == 3
    week, month = MONDAY, WEDNESDAY.date().replace(day=1)
    assert sorted(set(computed)) == sorted({week, month})
    renewed = {(i, k, b) for i, k, b, at in await _cells(session) if first.get((i, k, b)) != at}
    assert {bucket for _, _, bucket in renewed} == {week, month}
