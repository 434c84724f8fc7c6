"""/v1/topics: the coordinator-kept list that alone decides a report's topic groups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.topics.defaults import DEFAULT_TOPICS, MAX_HISTORY, MAX_LISTED
from allyapi.topics.models import Topic
from tests.feedback.factories import contact_request
from tests.helpers import TokenFactory, assert_problem

TOPICS = "/v1/topics"


async def keys(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = (
            {"limit": 100} if cursor is None else {"limit": 100, "cursor": cursor}
        )
        page = await client.get(TOPICS, params=params, headers=headers)
        assert page.status_code == 200, page.text
        found += [item["key"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


async def test_an_organisation_without_a_list_reads_the_defaults(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    for headers in (tokens.employee, tokens.analyst, tokens.coordinator):
        assert await keys(client, headers) == sorted(DEFAULT_TOPICS)
    first = await client.get(TOPICS, params={"limit": 5}, headers=tokens.employee)
    assert len(first.json()["items"]) == 5
    assert first.json()["next_cursor"] is not None
    one = first.json()["items"][0]
    read = await client.get(f"{TOPICS}/{one['id']}", headers=tokens.employee)
    assert read.json() == one
    assert read.headers["etag"]
    assert (await session.execute(sa.select(sa.func.count()).select_from(Topic))).scalar() == 0


async def test_a_coordinator_adds_a_topic_and_the_defaults_stay(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    default = (await client.get(TOPICS, params={"limit": 1}, headers=tokens.employee)).json()
    before = await client.get(f"{TOPICS}/{default['items'][0]['id']}", headers=tokens.employee)

    created = await client.post(
        TOPICS, json={"key": "Menopause", "label": "Menopause"}, headers=tokens.coordinator
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["key"], body["label"]) == ("menopause", "Menopause")
    assert created.headers["location"] == f"{TOPICS}/{body['id']}"
    assert created.headers["etag"]
    assert await keys(client, tokens.employee) == sorted([*DEFAULT_TOPICS, "menopause"])
    # The defaults were stored with the ids (and ETags) they were read under.
    after = await client.get(f"{TOPICS}/{default['items'][0]['id']}", headers=tokens.employee)
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]

    again = await client.post(TOPICS, json={"key": "menopause"}, headers=tokens.coordinator)
    assert_problem(again, 409)


async def test_idempotency_key_replays_the_create(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    headers = {**tokens.coordinator, "Idempotency-Key": "topic-1"}
    first = await client.post(TOPICS, json={"key": "carers"}, headers=headers)
    second = await client.post(TOPICS, json={"key": "carers"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = await client.post(TOPICS, json={"key": "debt"}, headers=headers)
    assert_problem(other, 422)


async def test_the_list_is_bounded_and_nothing_is_folded_away(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    for index in range(MAX_LISTED - len(DEFAULT_TOPICS)):
        response = await client.post(TOPICS, json={"key": f"t{index}"}, headers=tokens.coordinator)
        assert response.status_code == 201, response.text
    assert_problem(
        await client.post(TOPICS, json={"key": "one-more"}, headers=tokens.coordinator), 409
    )
    assert len(await keys(client, tokens.employee)) == MAX_LISTED

    # History is bounded too: removed topics count until the organisation's rows are full.
    stored = (await session.execute(sa.select(sa.func.count()).select_from(Topic))).scalar()
    assert stored == MAX_LISTED
    victim = (await session.execute(sa.select(Topic).where(Topic.key == "t0"))).scalars().one()
    session.add_all(
        Topic(
            org_id="acme",
            key=f"old-{n}",
            listed_from=datetime.now(UTC),
            retired_at=datetime.now(UTC),
        )
        for n in range(MAX_HISTORY - MAX_LISTED)
    )
    await session.commit()
    deleted = await client.delete(f"{TOPICS}/{victim.id}", headers=tokens.coordinator)
    assert deleted.status_code == 204
    full = await client.post(TOPICS, json={"key": "fresh"}, headers=tokens.coordinator)
    assert_problem(full, 409)


async def test_labels_change_with_if_match_keys_never_do(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    created = await client.post(TOPICS, json={"key": "carers"}, headers=tokens.coordinator)
    path, etag = f"{TOPICS}/{created.json()['id']}", created.headers["etag"]
    changed = await client.patch(
        path, json={"label": "Caring for someone"}, headers={**tokens.coordinator, "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["label"] == "Caring for someone"
    assert changed.headers["etag"] != etag
    stale = await client.patch(
        path, json={"label": "x"}, headers={**tokens.coordinator, "If-Match": etag}
    )
    assert_problem(stale, 412)
    assert_problem(await client.patch(path, json={"key": "other"}, headers=tokens.coordinator), 422)
    for body in ({"key": "two words"}, {"key": ""}, {"key": "x" * 65}, {"key": "ok", "id": "x"}):
        assert_problem(await client.post(TOPICS, json=body, headers=tokens.coordinator), 422)


async def test_removing_a_topic_keeps_its_row_and_it_can_come_back(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    listed = (await client.get(TOPICS, params={"limit": 100}, headers=tokens.employee)).json()
    stress = next(item for item in listed["items"] if item["key"] == "stress")
    path = f"{TOPICS}/{stress['id']}"
    stale = await client.delete(path, headers={**tokens.coordinator, "If-Match": '"nope"'})
    assert_problem(stale, 412)
    assert (await client.delete(path, headers=tokens.coordinator)).status_code == 204
    assert "stress" not in await keys(client, tokens.employee)
    assert_problem(await client.get(path, headers=tokens.employee), 404)
    assert_problem(await client.delete(path, headers=tokens.coordinator), 404)
    row = (await session.execute(sa.select(Topic).where(Topic.key == "stress"))).scalars().one()
    assert row.retired_at is not None  # the periods it grouped keep their group

    back = await client.post(TOPICS, json={"key": "stress"}, headers=tokens.coordinator)
    assert back.status_code == 201
    assert back.json()["id"] != stress["id"]


async def test_roles_and_other_organisations(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    created = await client.post(TOPICS, json={"key": "carers"}, headers=tokens.coordinator)
    path = f"{TOPICS}/{created.json()['id']}"
    assert_problem(await client.get(TOPICS), 401)
    assert_problem(await client.get(TOPICS, headers=tokens.integration), 403)
    for headers in (tokens.employee, tokens.analyst, tokens.integration):
        assert_problem(await client.post(TOPICS, json={"key": "x"}, headers=headers), 403)
        assert_problem(await client.patch(path, json={"label": "x"}, headers=headers), 403)
        assert_problem(await client.delete(path, headers=headers), 403)
    elsewhere = tokens.other_org_coordinator
    assert_problem(await client.get(path, headers=elsewhere), 404)
    assert_problem(await client.patch(path, json={"label": "x"}, headers=elsewhere), 404)
    assert_problem(await client.delete(path, headers=elsewhere), 404)
    assert "carers" not in await keys(client, elsewhere)


async def test_a_change_regroups_no_period_that_has_begun(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    arrive: Callable[[], Awaitable[int]],
) -> None:
    for index in range(5):
        await contact_request(
            session, tokens, f"r-{index}", topic="stress", created_at=datetime.now(UTC)
        )
    await arrive()
    query = {
        "group_by": "topic",
        "from": (datetime.now(UTC) - timedelta(days=60)).date().isoformat(),
    }
    before = (await client.get("/v1/reports/program", params=query, headers=tokens.analyst)).json()
    listed = (await client.get(TOPICS, params={"limit": 100}, headers=tokens.coordinator)).json()
    stress = next(item for item in listed["items"] if item["key"] == "stress")
    assert (
        await client.delete(f"{TOPICS}/{stress['id']}", headers=tokens.coordinator)
    ).status_code == 204
    added = await client.post(TOPICS, json={"key": "carers"}, headers=tokens.coordinator)
    assert added.status_code == 201
    after = (await client.get("/v1/reports/program", params=query, headers=tokens.analyst)).json()
    assert after == before  # "stress" keeps its group; "carers" starts with the next period


@pytest.mark.postgres_only
async def test_concurrent_creates_never_pass_the_bound(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    for index in range(MAX_LISTED - len(DEFAULT_TOPICS) - 1):
        response = await client.post(TOPICS, json={"key": f"t{index}"}, headers=tokens.coordinator)
        assert response.status_code == 201
    racing = await asyncio.gather(
        *(
            client.post(TOPICS, json={"key": f"race-{n}"}, headers=tokens.coordinator)
            for n in range(4)
        )
    )
    assert sorted(r.status_code for r in racing) == [201, 409, 409, 409]
    assert len(await keys(client, tokens.employee)) == MAX_LISTED
