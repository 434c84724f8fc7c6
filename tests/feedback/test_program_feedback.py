from __future__ import annotations

from datetime import date

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.feedback.models import FeedbackQuota, ProgramFeedback
from tests.helpers import TokenFactory, assert_problem

BODY = {"category": "training", "rating": 5, "comment": "More sessions please"}


@pytest.mark.postgres_only
async def test_the_quota_and_the_feedback_never_share_a_transaction(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    """Rows written by one transaction carry its id (``xmin``); a quota row (a keyed hash of
    the person) sharing it with a feedback row would pair the two for anyone with the key."""
    for category in ("training", "resources"):
        body = {**BODY, "category": category}
        response = await client.post("/v1/feedback", json=body, headers=tokens.employee)
        assert response.status_code == 201, response.text
    feedback = set((await session.execute(sa.text("SELECT xmin FROM program_feedback"))).scalars())
    quota = set((await session.execute(sa.text("SELECT xmin FROM feedback_quotas"))).scalars())
    assert len(feedback) == 2
    assert len(quota) == 2
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
    # seq and marks: its place in the aggregates' arrival order (docs/aggregates.md).
    assert columns == {
        "id", "org_id", "category", "rating", "comment_sealed", "created_on", "seq", "marks",
    }  # fmt: skip

    quota = (await session.execute(sa.select(FeedbackQuota))).scalars().one()
    assert quota.used == 1
    assert "emp-1" not in quota.bucket
    assert len(quota.bucket) == 64
    assert quota.bucket != tokens.ally_ref("emp-1")
    today = date.today()
    assert quota.period == f"{today.year}-{today.month:02d}"
    quota_columns = set(FeedbackQuota.__table__.columns.keys())  # type: ignore[attr-defined]
    assert quota_columns == {"org_id", "bucket", "period", "used"}


async def test_one_answer_per_person_category_and_month(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    """k counts people: every answer in a (month, category) cell is a different person."""
    response = await client.post("/v1/feedback", json=BODY, headers=tokens.employee)
    assert response.status_code == 201
    refused = await client.post("/v1/feedback", json={**BODY, "rating": 1}, headers=tokens.employee)
    assert_problem(refused, 429)
    assert 0 < int(refused.headers["retry-after"]) <= 31 * 24 * 3600
    other_category = {**BODY, "category": "resources"}
    answered = await client.post("/v1/feedback", json=other_category, headers=tokens.employee)
    assert answered.status_code == 201
    other = tokens.headers("emp-2", "employee")
    assert (await client.post("/v1/feedback", json=BODY, headers=other)).status_code == 201
    stored = (await session.execute(sa.select(ProgramFeedback.category))).scalars().all()
    assert sorted(stored) == ["resources", "training", "training"]


async def test_past_months_quota_rows_are_forgotten(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    session.add(FeedbackQuota(org_id="acme", bucket="0" * 64, period="2000-01", used=1))
    await session.commit()
    assert (
        await client.post("/v1/feedback", json=BODY, headers=tokens.employee)
    ).status_code == 201
    periods = (await session.execute(sa.select(FeedbackQuota.period))).scalars().all()
    assert "2000-01" not in periods


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
