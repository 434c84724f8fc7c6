from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import AllyStatus
from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem
from tests.training.factories import ally_headers, make_ally, make_course, make_record

COMPLIANCE = "/v1/training/compliance"


async def entries(client: httpx.AsyncClient, tokens: TokenFactory, query: str = "") -> list[Any]:
    response = await client.get(f"{COMPLIANCE}?{query}", headers=tokens.coordinator)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def test_buckets_and_listing(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    now = today()
    mhfa = await make_course(session, "MHFA")
    listening = await make_course(session, "Listening")
    await make_course(session, "Optional", required=False)
    full = await make_ally(session, tokens, "a", display_name="Ann")
    await make_record(session, full, mhfa, completed_on=now, expires_on=now + timedelta(days=30))
    await make_record(session, full, listening, completed_on=now, expires_on=None)
    gaps = await make_ally(session, tokens, "b", display_name="Bob")
    await make_record(session, gaps, mhfa, completed_on=now, expires_on=now)  # expired today
    # Self-reported only: does not count until a coordinator verifies it.
    await make_record(session, gaps, listening, completed_on=now, expires_on=None, verified=False)
    # An older expired record does not hide a newer current one.
    paused = await make_ally(session, tokens, "c", display_name="Cy", status=AllyStatus.paused)
    await make_record(session, paused, mhfa, completed_on=now, expires_on=now - timedelta(days=9))
    await make_record(session, paused, mhfa, completed_on=now, expires_on=now + timedelta(days=99))
    await make_record(session, paused, listening, completed_on=now, expires_on=None)
    await make_ally(session, tokens, "d", display_name="Dee", status=AllyStatus.retired)
    await make_ally(session, tokens, "x", display_name="Xavier", org=OTHER_ORG)

    items = await entries(client, tokens)
    assert [i["display_name"] for i in items] == ["Ann", "Bob", "Cy"]
    ann, bob, cy = items
    assert ann["ally_id"] == str(full.id)
    assert ann["status"] == "active"
    assert ann["listed"] is True
    assert ann["missing"] == []
    assert ann["expired"] == []
    assert ann["expiring"] == [
        {
            "course_id": str(mhfa.id),
            "name": "MHFA",
            "expires_on": (now + timedelta(days=30)).isoformat(),
        }
    ]
    assert bob["listed"] is False
    assert bob["missing"] == [
        {"course_id": str(listening.id), "name": "Listening", "expires_on": None}
    ]
    assert [c["name"] for c in bob["expired"]] == ["MHFA"]
    assert cy["listed"] is False  # compliant, but paused
    assert (cy["missing"], cy["expiring"], cy["expired"]) == ([], [], [])
    non_compliant = await entries(client, tokens, "only_non_compliant=true")
    assert [i["display_name"] for i in non_compliant] == ["Bob"]


async def test_verifying_a_self_reported_record_lists_the_ally(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    course = await make_course(session, "MHFA", validity_months=24)
    await make_ally(session, tokens, "a", display_name="Ann")
    long_ago = (today() - timedelta(days=400)).isoformat()
    reported = await client.post(
        "/v1/training-records",
        json={"course_id": str(course.id), "completed_on": long_ago},
        headers=ally_headers(tokens, "a"),
    )
    assert reported.status_code == 201, reported.text
    (before,) = await entries(client, tokens)
    assert before["listed"] is False
    assert [c["name"] for c in before["missing"]] == ["MHFA"]
    verify = await client.post(
        f"/v1/training-records/{reported.json()['id']}/verify", headers=tokens.coordinator
    )
    assert verify.status_code == 200
    (after,) = await entries(client, tokens)
    assert after["listed"] is True
    assert after["missing"] == []
    # A shorter validity re-derives the expiry: the record has lapsed, the ally is unlisted.
    shorter = await client.patch(
        f"/v1/training-courses/{course.id}",
        json={"validity_months": 12},
        headers=tokens.coordinator,
    )
    assert shorter.status_code == 200
    (later,) = await entries(client, tokens)
    assert later["listed"] is False
    assert [c["name"] for c in later["expired"]] == ["MHFA"]


async def test_pagination(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    for name in ("Eve", "Ann", "Dan", "Bob", "Cat"):
        await make_ally(session, tokens, name.lower(), display_name=name)
    first = (await client.get(f"{COMPLIANCE}?limit=2", headers=tokens.coordinator)).json()
    assert [i["display_name"] for i in first["items"]] == ["Ann", "Bob"]
    second = (
        await client.get(
            f"{COMPLIANCE}?limit=2&cursor={first['next_cursor']}", headers=tokens.coordinator
        )
    ).json()
    assert [i["display_name"] for i in second["items"]] == ["Cat", "Dan"]
    third = (
        await client.get(
            f"{COMPLIANCE}?limit=2&cursor={second['next_cursor']}", headers=tokens.coordinator
        )
    ).json()
    assert [i["display_name"] for i in third["items"]] == ["Eve"]
    assert third["next_cursor"] is None
    # No required course: everyone active and accepting is listed.
    assert all(i["listed"] for i in first["items"])


async def test_auth_cases(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await make_ally(session, tokens, "a", display_name="Ann")
    assert_problem(await client.get(COMPLIANCE), 401)
    for headers in (tokens.employee, tokens.analyst, tokens.integration, ally_headers(tokens, "a")):
        assert_problem(await client.get(COMPLIANCE, headers=headers), 403)
    foreign = await client.get(COMPLIANCE, headers=tokens.other_org_coordinator)
    assert foreign.json() == {"items": [], "next_cursor": None}
    assert_problem(
        await client.get(f"{COMPLIANCE}?only_non_compliant=maybe", headers=tokens.coordinator), 422
    )


async def test_queries_per_page_do_not_grow_with_the_page(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    course = await make_course(session, "MHFA")
    for number in range(12):
        ally = await make_ally(session, tokens, f"a{number}", display_name=f"Ally {number:02}")
        await make_record(session, ally, course, completed_on=today(), expires_on=None)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    counts = []
    event.listen(database.session_engine.sync_engine, "before_cursor_execute", record)
    try:
        for limit in (2, 12):
            statements.clear()
            response = await client.get(f"{COMPLIANCE}?limit={limit}", headers=tokens.coordinator)
            assert len(response.json()["items"]) == limit
            counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
    finally:
        event.remove(database.session_engine.sync_engine, "before_cursor_execute", record)
    assert counts[0] == counts[1] == 3
