"""The arrival pass: a fixed, append-only order and marks, written once (aggregates/arrivals.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.aggregates.arrivals import arrive_all
from allyapi.aggregates.marks import Kind, first
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.db.session import Database
from tests.feedback.factories import ally, contact_request
from tests.helpers import OTHER_ORG, TokenFactory

Arrive = Callable[[], Awaitable[int]]
NOW = datetime.now(UTC)


async def _rows(session: AsyncSession, org: str = "acme") -> list[ContactRequest]:
    query = (
        sa.select(ContactRequest)
        .where(ContactRequest.org_id == org)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(query)).scalars().all())


async def test_arrivals_are_numbered_after_everything_before_them(
    tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    for index in range(3):
        await contact_request(session, tokens, f"r-{index}", status="pending", accepted_after=None)
    await contact_request(
        session, tokens, "elsewhere", org=OTHER_ORG, status="pending", accepted_after=None
    )
    assert await arrive() == 4
    first_round = {row.id: row.created_seq for row in await _rows(session)}
    assert sorted(first_round.values()) == [1, 2, 3]
    # An older request arriving later still comes after everything that arrived before.
    late = await contact_request(
        session,
        tokens,
        "late",
        status="pending",
        accepted_after=None,
        created_at=NOW - timedelta(days=3),
    )
    assert await arrive() == 1
    rows = {row.id: row for row in await _rows(session)}
    assert rows[late.id].created_seq == 4
    assert {i: rows[i].created_seq for i in first_round} == first_round  # never renumbered
    assert [row.created_seq for row in await _rows(session, OTHER_ORG)] == [1]
    assert await arrive() == 0


async def test_a_pass_orders_by_day_then_at_random_and_marks_once(
    tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    yesterday = await contact_request(
        session,
        tokens,
        "ann",
        status="pending",
        accepted_after=None,
        created_at=NOW - timedelta(days=1),
    )
    for _ in range(2):
        await contact_request(
            session, tokens, "bob", status="pending", accepted_after=None, created_at=NOW
        )
    await arrive()
    rows = sorted(await _rows(session), key=lambda row: row.created_seq or 0)
    assert rows[0].id == yesterday.id  # an earlier day first
    bobs = [row for row in rows if row.id != yesterday.id]
    assert [bool(row.created_marks & first(Kind.week)) for row in bobs] == [True, False]


async def test_arrival_changes_no_version_and_no_date(
    tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    request = await contact_request(session, tokens, "ann")
    before = (request.version, request.updated_at, request.created_at, request.accepted_at)
    await arrive()
    [row] = await _rows(session)
    assert (row.version, row.updated_at, row.created_at, row.accepted_at) == before
    assert row.created_seq == row.accepted_seq == row.completed_seq == 1
    assert row.accept_hours == 2.0  # taken now: later day-truncation cannot move the median


async def test_marks_stay_when_the_request_is_erased(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    helper = await ally(session, tokens, "ally-1")
    me = tokens.headers("ann", "employee")
    created = await client.post(
        "/v1/contact-requests",
        json={"ally_id": str(helper.id), "topic": "stress", "message": "Hi"},
        headers=me,
    )
    assert created.status_code == 201, created.text
    await arrive()
    [arrived] = await _rows(session)
    ref, marks = arrived.requester_ref, (arrived.created_seq, arrived.created_marks)
    assert (
        await client.delete(f"/v1/contact-requests/{created.json()['id']}", headers=me)
    ).status_code == 204
    await arrive()
    [erased] = await _rows(session)
    assert erased.requester_ref != ref
    assert (erased.created_seq, erased.created_marks) == marks


@pytest.mark.postgres_only
async def test_a_row_being_changed_is_skipped_and_arrives_in_a_later_pass(
    tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    held = await contact_request(session, tokens, "ann", status="pending", accepted_after=None)
    await contact_request(session, tokens, "bob", status="pending", accepted_after=None)
    async with database.engine.connect() as other:
        transaction = await other.begin()
        await other.execute(
            sa.select(ContactRequest.id).where(ContactRequest.id == held.id).with_for_update()
        )
        assert await asyncio.wait_for(arrive_all(database), timeout=10) == {"acme": 1}
        await transaction.rollback()
    assert await arrive_all(database) == {"acme": 1}
    rows = {row.id: row.created_seq for row in await _rows(session)}
    assert rows[held.id] == 2


@pytest.mark.postgres_only
async def test_passes_in_several_processes_number_each_row_once(
    tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    for index in range(30):
        await contact_request(session, tokens, f"r-{index}", status="pending", accepted_after=None)
    results = await asyncio.gather(*(arrive_all(database) for _ in range(4)))
    assert sum(result.get("acme", 0) for result in results) == 30
    assert sorted(row.created_seq or 0 for row in await _rows(session)) == list(range(1, 31))
