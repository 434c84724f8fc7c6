"""docs/privacy.md, P7: erasure destroys the protected content at once; retention purges it
after the period."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    ContactRequestKey,
)
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.feedback.models import RequestFeedback
from allyapi.jobs.contact_requests import run_all_jobs
from tests.helpers import TokenFactory, assert_problem
from tests.privacy.scenario import run_story


async def thread_and_log_rows(session: AsyncSession, request_id: object) -> tuple[int, int]:
    messages = await session.scalar(
        sa.select(sa.func.count()).where(col(ContactMessage.request_id) == request_id)
    )
    entries = await session.scalar(
        sa.select(sa.func.count()).where(col(AccessLogEntry.request_id) == request_id)
    )
    return int(messages or 0), int(entries or 0)


async def test_erasure_destroys_content_thread_and_access_log_at_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> None:
    story = await run_story(client, client, session, settings, tokens)

    assert await session.get(ContactRequest, story.erased_id, populate_existing=True) is None
    assert await thread_and_log_rows(session, story.erased_id) == (0, 0)
    # Only non-identifying statistics remain, under a new id, with day-truncated dates.
    rows = await session.execute(
        sa.select(ContactRequest).where(col(ContactRequest.erased_at).is_not(None))
    )
    row = rows.scalars().one()
    assert row.id != story.erased_id
    assert (row.message_sealed, row.contact_detail_sealed, row.alias_sealed) == (None, None, None)
    assert (row.topic, row.requester_ref, row.language) == ("workload", "erased", None)
    for stamp in (row.created_at, row.closed_at):
        assert stamp is not None
        assert (stamp.hour, stamp.minute, stamp.second, stamp.microsecond) == (0, 0, 0, 0)
    me = tokens.headers(story.sub, "employee")
    gone = await client.get(f"/v1/contact-requests/{story.erased_id}", headers=me)
    assert gone.status_code == 404


async def test_retention_purges_a_closed_request_only_after_the_period(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    database: Database,
) -> None:
    story = await run_story(client, client, session, settings, tokens)
    me = tokens.headers(story.sub, "employee")
    url = f"/v1/contact-requests/{story.completed_id}"

    row = await session.get(ContactRequest, story.completed_id, populate_existing=True)
    assert row is not None
    assert row.content_purge_at is not None
    assert row.closed_at is not None
    assert row.content_purge_at - row.closed_at == timedelta(days=settings.retention_days)

    # Within the period: nothing happens.
    assert (await run_all_jobs(database, settings)).purged == 0
    assert (await client.get(url, headers=me)).json()["message"] == story.message
    messages, entries = await thread_and_log_rows(session, story.completed_id)
    assert messages == 2
    assert entries >= 1  # the ally's reads (P5)

    # Drive time: the request closed longer ago than the retention period.
    past = utcnow() - timedelta(days=settings.retention_days, minutes=1)
    await session.execute(
        sa.update(ContactRequest)
        .where(col(ContactRequest.id) == story.completed_id)
        .values(closed_at=past, content_purge_at=past + timedelta(days=settings.retention_days))
    )
    await session.commit()
    assert (await run_all_jobs(database, settings)).purged == 1

    row = await session.get(ContactRequest, story.completed_id, populate_existing=True)
    assert row is not None
    assert (row.message_sealed, row.contact_detail_sealed, row.alias_sealed) == (None, None, None)
    assert row.content_purged_at is not None
    assert await thread_and_log_rows(session, story.completed_id) == (0, 0)
    view = await client.get(url, headers=me)
    assert view.status_code == 200
    purged = view.json()
    assert (purged["message"], purged["contact_detail"], purged["alias"]) == (None, None, None)
    assert (purged["status"], purged["topic"]) == ("completed", "stress")
    thread = await client.get(f"{url}/messages", headers=me)
    assert thread.status_code in (200, 404, 409), thread.text
    if thread.status_code == 200:
        assert thread.json()["items"] == []


async def age_past_retention(session: AsyncSession, settings: Settings, request_id: object) -> None:
    """Drive time: the request closed longer ago than the retention period."""
    past = utcnow() - timedelta(days=settings.retention_days, minutes=1)
    await session.execute(
        sa.update(ContactRequest)
        .where(col(ContactRequest.id) == request_id)
        .values(closed_at=past, content_purge_at=past + timedelta(days=settings.retention_days))
    )
    await session.commit()


FEEDBACK = {"rating": 4, "felt_heard": True, "would_recommend": True}


async def test_retention_purge_destroys_the_request_feedback_comment(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    database: Database,
) -> None:
    story = await run_story(client, client, session, settings, tokens)
    me = tokens.headers(story.sub, "employee")
    url = f"/v1/contact-requests/{story.completed_id}/feedback"
    given = await client.post(url, json={**FEEDBACK, "comment": "thank you"}, headers=me)
    assert given.status_code == 201, given.text

    await age_past_retention(session, settings, story.completed_id)
    assert (await run_all_jobs(database, settings)).purged == 1

    session.expunge_all()
    stored = (
        await session.execute(
            sa.select(RequestFeedback).where(col(RequestFeedback.request_id) == story.completed_id)
        )
    ).scalar_one()
    assert stored.comment_sealed is None  # protected content: gone with the rest
    assert (stored.rating, stored.felt_heard) == (4, True)  # statistics: kept
    # The request's own data key went too: any copy of its sealed content is dead.
    assert await session.get(ContactRequestKey, story.completed_id) is None


async def test_feedback_on_a_purged_request_cannot_carry_a_comment(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    database: Database,
) -> None:
    story = await run_story(client, client, session, settings, tokens)
    me = tokens.headers(story.sub, "employee")
    url = f"/v1/contact-requests/{story.completed_id}/feedback"
    await age_past_retention(session, settings, story.completed_id)
    assert (await run_all_jobs(database, settings)).purged == 1

    refused = await client.post(url, json={**FEEDBACK, "comment": "late words"}, headers=me)
    problem = assert_problem(refused, 409)
    assert problem["type"] == "https://allyapi.dev/problems/content-purged"
    session.expunge_all()
    assert await session.scalar(sa.select(sa.func.count()).select_from(RequestFeedback)) == 0

    rated = await client.post(url, json=FEEDBACK, headers=me)
    assert rated.status_code == 201, rated.text
    assert rated.json()["comment"] is None
