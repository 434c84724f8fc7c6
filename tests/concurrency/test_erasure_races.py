"""An erasure is serialised with every write that touches the request.

Request feedback and the access log of an ally's read used to load the request without a
lock and insert after it: an erase committing in between answered 204 while the feedback
answered 201, and the feedback's comment (or the access-log row, with its full timestamp)
survived the erasure. Now those paths lock the request row, so either the write came first
(and the erasure destroys it with the rest) or the erasure did (and the write is a clean 404).

Fired at two server processes on PostgreSQL; the same scenarios run in process on both legs
(SQLite serialises every transaction, so there they prove the outcome rules, not the race).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import AccessLogEntry, ContactRequest
from allyapi.core.settings import Settings
from allyapi.feedback.models import RequestFeedback
from tests.concurrency.conftest import Server
from tests.factories import make_ally
from tests.helpers import TokenFactory

TRIES = 10
READERS = 8


@dataclass(frozen=True)
class Target:
    """Where to send requests: one or several base URLs on one client."""

    http: httpx.AsyncClient
    bases: Sequence[str]

    def url(self, n: int, path: str) -> str:
        return f"{self.bases[n % len(self.bases)]}{path}"


async def at_once(*calls: Awaitable[httpx.Response]) -> list[httpx.Response]:
    return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=120))


async def completed_request(
    target: Target, tokens: TokenFactory, ally_sub: str, requester: dict[str, str], ally_id: object
) -> str:
    them = tokens.headers(ally_sub, "employee")
    base = target.url(0, "/v1/contact-requests")
    created = await target.http.post(
        base, json={"ally_id": str(ally_id), "topic": "stress", "message": "m"}, headers=requester
    )
    assert created.status_code == 201, created.text
    request_id: str = created.json()["id"]
    for action, body in (("accept", None), ("complete", {"signposted": False, "wellbeing": 3})):
        done = await target.http.post(f"{base}/{request_id}/{action}", json=body, headers=them)
        assert done.status_code == 200, done.text
    return request_id


async def comments_left(session: AsyncSession) -> int:
    """Feedback comments still stored for a request that no longer exists for its requester."""
    await session.rollback()
    query = (
        sa.select(sa.func.count())
        .select_from(RequestFeedback)
        .join(ContactRequest, col(ContactRequest.id) == col(RequestFeedback.request_id))
        .where(
            col(ContactRequest.erased_at).is_not(None),
            col(RequestFeedback.comment_sealed).is_not(None),
        )
    )
    return int((await session.execute(query)).scalar_one())


async def feedback_against_erasure(
    target: Target, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> Counter[tuple[int, int]]:
    ally = await make_ally(session, settings, sub="race-ally", capacity=TRIES + 1)
    ally_id = ally.id
    outcomes: Counter[tuple[int, int]] = Counter()
    for n in range(TRIES):
        me = tokens.headers(f"race-requester-{n}", "employee")
        request_id = await completed_request(target, tokens, "race-ally", me, ally_id)
        path = f"/v1/contact-requests/{request_id}"
        feedback = {"rating": 2, "felt_heard": False, "would_recommend": False, "comment": "c"}
        given, erased = await at_once(
            target.http.post(target.url(n, f"{path}/feedback"), json=feedback, headers=me),
            target.http.delete(target.url(n + 1, path), headers=me),
        )
        outcomes[(given.status_code, erased.status_code)] += 1
        assert await comments_left(session) == 0, (given.status_code, erased.status_code)
    return outcomes


async def reads_against_erasure(
    target: Target, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> Counter[int]:
    ally = await make_ally(session, settings, sub="reading-ally", capacity=TRIES + 1)
    ally_id = ally.id
    them = tokens.headers("reading-ally", "employee")
    statuses: Counter[int] = Counter()
    for n in range(TRIES):
        me = tokens.headers(f"reader-requester-{n}", "employee")
        created = await target.http.post(
            target.url(n, "/v1/contact-requests"),
            json={"ally_id": str(ally_id), "topic": "stress", "message": "m"},
            headers=me,
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        path = f"/v1/contact-requests/{request_id}"
        reads = [
            target.http.get(target.url(n + i, path + ("/messages" if i % 2 else "")), headers=them)
            for i in range(READERS)
        ]
        *answers, erased = await at_once(
            *reads, target.http.delete(target.url(n, path), headers=me)
        )
        assert erased.status_code == 204, erased.text
        statuses.update(answer.status_code for answer in answers)
        await session.rollback()
        left = await session.scalar(
            sa.select(sa.func.count()).where(
                col(AccessLogEntry.request_id) == uuid.UUID(request_id)
            )
        )
        assert left == 0
    assert set(statuses) <= {200, 404}, statuses
    total = await session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry))
    assert total == 0
    return statuses


def assert_feedback_outcomes(outcomes: Counter[tuple[int, int]]) -> None:
    """Either the feedback came first (201, and the erasure then took its comment) or the
    erasure did (the feedback is a 404, as for any request that does not exist)."""
    assert set(outcomes) <= {(201, 204), (404, 204)}, outcomes


@pytest.mark.postgres_only
async def test_feedback_racing_an_erasure_on_two_processes(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    target = Target(http, [server.base_url for server in two_servers])
    assert_feedback_outcomes(await feedback_against_erasure(target, session, settings, tokens))


@pytest.mark.postgres_only
async def test_ally_reads_racing_an_erasure_on_two_processes(
    two_servers: list[Server],
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> None:
    target = Target(http, [server.base_url for server in two_servers])
    await reads_against_erasure(target, session, settings, tokens)


async def test_feedback_racing_an_erasure_in_process(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> None:
    target = Target(client, [""])
    assert_feedback_outcomes(await feedback_against_erasure(target, session, settings, tokens))


async def test_ally_reads_racing_an_erasure_in_process(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> None:
    await reads_against_erasure(Target(client, [""]), session, settings, tokens)
