from __future__ import annotations

from datetime import date

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.feedback.models import FeedbackQuota, ProgramFeedback
from allyapi.feedback.service import PROGRAM_FEEDBACK_PER_WEEK
from tests.helpers import TokenFactory, assert_problem

BODY = {"category": "training", "rating": 5, "comment": "More sessions please"}


@pytest.mark.postgres_only
async def test_the_quota_and_the_feedback_never_share_a_transaction(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    """Rows written by one transaction carry its id (``xmin``); a quota row (a keyed hash of
    the person) sharing it with a feedback row would pair the two for anyone with the key."""
    for _ in range(2):
        response = await client.post("/v1/feedback", json=BODY, headers=tokens.employee)
        assert response.status_code == 201, response.text
    feedback = set((await session.execute(sa.text("SELECT xmin FROM program_feedback"))).scalars())
    quota = set((await session.execute(sa.text("SELECT xmin FROM feedback_quotas"))).scalars())
    assert len(feedback) == 2
    assert len(quota) == 1
    assert not feedback & quota


async def test_anonymous_feedback_is_stored_without_a_person(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    response = await client.post("/v1/feedback", json=BODY, headers=tokens.employee)
    assert response.status_code == 201, response.text
    assert response.json() == {**BODY, "created_on": date.today().isoformat()}

    row = (await session.execute(sa.select(ProgramFeedback))).scalars().one()
    assert isinstance(row.created_on, date)
    assert row.comment_sealed is not None
    assert "sessions" not in row.comment_sealed
    columns = set(ProgramFeedback.__table__.columns.keys())  # type: ignore[attr-defined]
    assert columns == {"id", "org_id", "category", "rating", "comment_sealed", "created_on"}

    quota = (await session.execute(sa.select(FeedbackQuota))).scalars().one()
    assert quota.used == 1
    assert "emp-1" not in quota.bucket
    assert len(quota.bucket) == 64
    assert quota.bucket != tokens.ally_ref("emp-1")
    year, week, _ = date.today().isocalendar()
    assert quota.week == f"{year}-W{week:02d}"
    quota_columns = set(FeedbackQuota.__table__.columns.keys())  # type: ignore[attr-defined]
    assert quota_columns == {"org_id", "bucket", "week", "used"}


async def test_weekly_limit_per_person(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    for _ in range(PROGRAM_FEEDBACK_PER_WEEK):
        response = await client.post("/v1/feedback", json=BODY, headers=tokens.employee)
        assert response.status_code == 201
    refused = await client.post("/v1/feedback", json=BODY, headers=tokens.employee)
    assert_problem(refused, 429)
    assert 0 < int(refused.headers["retry-after"]) <= 7 * 24 * 3600
    other = tokens.headers("emp-2", "employee")
    assert (await client.post("/v1/feedback", json=BODY, headers=other)).status_code == 201


async def test_past_weeks_quota_rows_are_forgotten(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    session.add(FeedbackQuota(org_id="acme", bucket="0" * 64, week="2000-W01", used=5))
    await session.commit()
    assert (
        await client.post("/v1/feedback", json=BODY, headers=tokens.employee)
    ).status_code == 201
    weeks = (await session.execute(sa.select(FeedbackQuota.week))).scalars().all()
    assert "2000-W01" not in weeks


async def test_roles_auth_and_input(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    assert_problem(await client.post("/v1/feedback", json=BODY), 401)
    for headers in (tokens.analyst, tokens.integration, tokens.headers("c", "coordinator")):
        assert_problem(await client.post("/v1/feedback", json=BODY, headers=headers), 403)
    for body in (
        {**BODY, "category": "salary"},
        {**BODY, "rating": 9},
        {**BODY, "comment": "x" * 2001},
        {**BODY, "sub": "emp-1"},
    ):
        assert_problem(await client.post("/v1/feedback", json=body, headers=tokens.employee), 422)
