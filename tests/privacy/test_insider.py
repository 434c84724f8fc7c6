"""The insider over time (tests/privacy/insider.py): every aggregate operation of the contract,
every role that may read it, every kind of contribution.

- one person, then k - 1 people contribute: nothing any reader can see moves;
- the k-th person contributes: something moves (so each of these tests can fail);
- padding: one person contributing many times counts once;
- steering: nothing employees do changes how reports are grouped;
- erasure: a requester erasing their request never moves a released figure.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.topics.defaults import DEFAULT_TOPICS
from tests.helpers import TokenFactory
from tests.privacy.insider import (
    ACTIONS,
    INSIDER_ALLY,
    Arrive,
    Insider,
    aggregate_operations,
    answer_programme,
    erase,
    give_feedback,
)


@pytest.fixture
def insider(
    app: FastAPI,
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    arrive: Arrive,
) -> Insider:
    return Insider(app, client, tokens, session, arrive)


def test_the_contract_marks_the_aggregate_operations(app: FastAPI) -> None:
    assert set(aggregate_operations(app)) >= {"/v1/feedback/summary", "/v1/reports/program"}


@pytest.mark.parametrize("name", list(ACTIONS))
async def test_fewer_than_k_people_move_nothing_and_k_people_move_something(
    insider: Insider, name: str
) -> None:
    action, stocks = ACTIONS[name]
    world = await insider.build(*stocks)
    reads = await insider.discover(world)
    readers = {(read.path, read.reader) for read in reads}
    assert ("/v1/reports/program", "analyst") in readers
    assert ("/v1/feedback/summary", "ally") in readers
    before = await insider.snapshot()

    await action(insider, world, 0)
    assert await insider.moved(before) == [], "one person moved a released figure"
    for index in range(1, insider.k - 1):
        await action(insider, world, index)
    assert await insider.moved(before) == [], "k - 1 people moved a released figure"

    await action(insider, world, insider.k - 1)
    assert await insider.moved(before) != [], "k people moved nothing: the test cannot fail"


async def test_every_aggregate_operation_moves_once_k_people_contribute(
    insider: Insider,
) -> None:
    """So a new aggregate operation the insider's contributions do not reach fails here
    (give the insider a contribution that feeds it)."""
    world = await insider.build("completed")
    await insider.discover(world)
    before = await insider.snapshot()
    for index in range(insider.k):
        await give_feedback(insider, world, index)
        await answer_programme(insider, world, index)
    moved = await insider.moved(before)
    for path in aggregate_operations(insider.app):
        assert any(f"GET {path}?" in read for read in moved), f"{path} never moved"


async def test_one_person_contributing_many_times_counts_once(insider: Insider) -> None:
    world = await insider.build("padding")
    await insider.discover(world)
    before = await insider.snapshot()
    k = insider.k
    stock = world.stock["padding"]
    padder, fillers = stock[:k], stock[k:]

    # k feedback from one person (one per request of theirs).
    for sub, request_id in padder:
        body = {"rating": 1, "felt_heard": False, "would_recommend": False}
        response = await insider.client.post(
            f"/v1/contact-requests/{request_id}/feedback",
            json=body,
            headers=insider.tokens.headers(sub, "employee"),
        )
        assert response.status_code == 201, response.text
    # Programme answers: the same category again is refused; other categories are one
    # person each.
    headers = insider.tokens.headers("padder", "employee")
    for category in ("training", "training", "resources", "accessibility", "other"):
        body = {"category": category, "rating": 1}
        response = await insider.client.post("/v1/feedback", json=body, headers=headers)
        assert response.status_code in (201, 429), response.text
    # Requests: the cap, cancel them all, the cap again.
    for _ in range(2):
        made = []
        for _ in range(3):
            body = {"ally_id": str(world.ally_id), "topic": "stress", "message": "Hello"}
            response = await insider.client.post("/v1/contact-requests", json=body, headers=headers)
            assert response.status_code == 201, response.text
            made.append(response.json()["id"])
        for request_id in made:
            cancel = f"/v1/contact-requests/{request_id}/cancel"
            assert (await insider.client.post(cancel, headers=headers)).status_code == 200
    assert await insider.moved(before) == [], "one person padded a cell"

    for sub, request_id in fillers[:-1]:  # with k - 2 others: still k - 1 people
        body = {"rating": 1, "felt_heard": False, "would_recommend": False}
        response = await insider.client.post(
            f"/v1/contact-requests/{request_id}/feedback",
            json=body,
            headers=insider.tokens.headers(sub, "employee"),
        )
        assert response.status_code == 201, response.text
    assert await insider.moved(before) == [], "k - 1 people moved a released figure"


async def test_employees_cannot_steer_the_report_groups(insider: Insider) -> None:
    world = await insider.build()
    await insider.discover(world)
    before = await insider.snapshot()
    odd = [f"odd-topic-{n}" for n in range(20)]
    for index in range(5):  # volunteers never approved, each with twenty odd topics
        headers = insider.tokens.headers(f"steerer-{index}", "employee")
        body = {"display_name": f"Steerer {index}", "topics": odd}
        assert (
            await insider.client.post("/v1/allies", json=body, headers=headers)
        ).status_code == 201
    # An approved, listed ally with odd topics, and requests naming them.
    headers = insider.tokens.headers("listed-steerer", "employee")
    body = {"display_name": "Listed", "topics": ["pregnancy", *odd[:5]]}
    created = await insider.client.post("/v1/allies", json=body, headers=headers)
    approve = f"/v1/allies/{created.json()['id']}/approve"
    assert (
        await insider.client.post(approve, headers=insider.tokens.coordinator)
    ).status_code == 200
    for index in range(insider.k - 1):
        body = {"ally_id": str(world.ally_id), "topic": "pregnancy", "message": "Hello"}
        headers = insider.tokens.headers(f"asker-{index}", "employee")
        assert (
            await insider.client.post("/v1/contact-requests", json=body, headers=headers)
        ).status_code == 201
    assert await insider.moved(before) == []
    report = await insider.client.get(
        "/v1/reports/program", params={"group_by": "topic"}, headers=insider.tokens.analyst
    )
    for period in report.json()["periods"]:
        assert [group["key"] for group in period["groups"]] == [*sorted(DEFAULT_TOPICS), "(other)"]


async def test_erasing_requests_never_moves_a_released_figure(insider: Insider) -> None:
    world = await insider.build()
    await insider.discover(world)
    before = await insider.snapshot()
    await erase(insider, world, 0)
    assert await insider.moved(before) == []
    for index in range(1, insider.k):
        await erase(insider, world, index)
    assert await insider.moved(before) == [], "erasures moved released figures"
    headers = insider.tokens.headers(INSIDER_ALLY, "employee")
    own = await insider.client.get("/v1/feedback/summary", headers=headers)
    assert own.json()["requests"]["responses"] == {"value": insider.k, "suppressed": False}
