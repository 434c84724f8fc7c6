"""The directory, *listed* semantics and single reads."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from tests.allies.factories import (
    active_ally,
    employee,
    required_course,
    training_record,
    volunteer,
)
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem


async def names(client: httpx.AsyncClient, query: str, headers: dict[str, str]) -> list[str]:
    response = await client.get(f"/v1/allies{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [item["display_name"] for item in response.json()["items"]]


async def test_directory_shows_listed_allies_public_fields_only(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    ally = await active_ally(client, tokens, "alex")
    await volunteer(client, tokens, "blake", display_name="Blake Applied")
    response = await client.get("/v1/allies", headers=tokens.employee)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["id"] for item in items] == [ally["id"]]
    assert set(items[0]) == {
        "id",
        "display_name",
        "pronouns",
        "job_title",
        "department",
        "location",
        "timezone",
        "languages",
        "topics",
        "bio",
        "contact_channels",
        "availability",
        "accepting",
    }
    assert response.json()["next_cursor"] is None


async def test_listed_needs_active_accepting_and_current_required_training(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    course = await required_course(session)
    await required_course(session, required=False)  # optional courses never unlist
    current = await active_ally(client, tokens, "current", display_name="Current")
    await training_record(session, current["id"], course, expires_on=today() + timedelta(days=1))
    forever = await active_ally(client, tokens, "forever", display_name="Forever")
    await training_record(session, forever["id"], course, expires_on=None)
    await active_ally(client, tokens, "missing", display_name="Missing")
    expired = await active_ally(client, tokens, "expired", display_name="Expired")
    await training_record(session, expired["id"], course, expires_on=today())
    unverified = await active_ally(client, tokens, "unverified", display_name="Unverified")
    await training_record(session, unverified["id"], course, verified=False)
    paused = await active_ally(client, tokens, "paused", display_name="Paused")
    await training_record(session, paused["id"], course)
    await client.post(f"/v1/allies/{paused['id']}/pause", headers=tokens.coordinator)
    not_accepting = await active_ally(
        client, tokens, "busy", display_name="Not accepting", accepting=False
    )
    await training_record(session, not_accepting["id"], course)
    applied = await volunteer(client, tokens, "applied", display_name="Applied")
    await training_record(session, applied["id"], course)

    assert await names(client, "", tokens.employee) == ["Current", "Forever"]
    for hidden in (expired, unverified, paused, not_accepting, applied):
        assert_problem(await client.get(f"/v1/allies/{hidden['id']}", headers=tokens.employee), 404)
        coordinator = await client.get(f"/v1/allies/{hidden['id']}", headers=tokens.coordinator)
        assert coordinator.status_code == 200
        assert coordinator.json()["listed"] is False
    shown = await client.get(f"/v1/allies/{current['id']}", headers=tokens.coordinator)
    assert shown.json()["listed"] is True


async def test_expiry_unlists_without_any_action(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    course = await required_course(session)
    ally = await active_ally(client, tokens, "alex")
    record = await training_record(
        session, ally["id"], course, expires_on=today() + timedelta(days=1)
    )
    assert await names(client, "", tokens.employee) == ["Alex Ally"]
    own = await client.get("/v1/me/ally-profile", headers=employee(tokens, "alex"))
    assert own.json()["listed"] is True
    # A day later the record expires on "today": nothing runs, the ally is simply not listed.
    record.expires_on = today()
    await session.commit()
    assert await names(client, "", tokens.employee) == []
    own = await client.get("/v1/me/ally-profile", headers=employee(tokens, "alex"))
    assert own.json()["listed"] is False


async def test_required_course_of_another_org_does_not_unlist(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await required_course(session, org=OTHER_ORG)
    await active_ally(client, tokens, "alex")
    assert await names(client, "", tokens.employee) == ["Alex Ally"]


async def test_filters(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    await active_ally(
        client,
        tokens,
        "a",
        display_name="Ana",
        languages=["es", "en-GB"],
        topics=["grief"],
        location="Madrid",
        bio="100% here for you",
    )
    await active_ally(
        client,
        tokens,
        "b",
        display_name="Ben",
        languages=["en-GB"],
        topics=["stress"],
        location="London",
        job_title="Data_Engineer",
    )
    await active_ally(
        client, tokens, "c", display_name="Cy", languages=["fr"], topics=["Grief"], location="Paris"
    )
    headers = tokens.employee
    assert await names(client, "?language=en-gb", headers) == ["Ana", "Ben"]
    # RFC 4647 basic filtering: a language range matches its own tag and longer ones.
    assert await names(client, "?language=en", headers) == ["Ana", "Ben"]
    assert await names(client, "?language=en-US", headers) == []
    assert await names(client, "?topic=GRIEF", headers) == ["Ana", "Cy"]
    assert await names(client, "?location=london", headers) == ["Ben"]
    assert await names(client, "?location=Lon", headers) == []
    assert await names(client, "?q=DATA_eng", headers) == ["Ben"]
    assert await names(client, "?q=stress", headers) == ["Ben"]
    assert await names(client, "?q=madrid", headers) == ["Ana"]
    # LIKE wildcards are literal characters.
    assert await names(client, "?q=%25", headers) == ["Ana"]
    assert await names(client, "?q=a_a", headers) == []
    assert await names(client, "?q=_", headers) == ["Ben"]
    assert await names(client, "?language=es&topic=grief&location=MADRID", headers) == ["Ana"]
    assert await names(client, "?accepting=true", headers) == ["Ana", "Ben", "Cy"]
    assert await names(client, "?accepting=false", headers) == []
    for bad in ("?q=" + "x" * 101, "?q=", "?language=not%20a%20tag", "?limit=0", "?limit=101"):
        assert_problem(await client.get(f"/v1/allies{bad}", headers=headers), 422)


async def test_pagination_is_stable_under_inserts(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    for index in range(5):
        await active_ally(client, tokens, f"sub-{index}", display_name=f"Ally {index}")
    first = (await client.get("/v1/allies?limit=2", headers=tokens.employee)).json()
    assert [item["display_name"] for item in first["items"]] == ["Ally 0", "Ally 1"]
    await active_ally(client, tokens, "early", display_name="Ally 00")
    second = (
        await client.get(
            f"/v1/allies?limit=2&cursor={first['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert [item["display_name"] for item in second["items"]] == ["Ally 2", "Ally 3"]
    third = (
        await client.get(
            f"/v1/allies?limit=2&cursor={second['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert [item["display_name"] for item in third["items"]] == ["Ally 4"]
    assert third["next_cursor"] is None


async def test_same_names_paginate_by_id(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ids = sorted(
        [(await active_ally(client, tokens, f"s{i}", display_name="Sam"))["id"] for i in range(3)]
    )
    seen: list[str] = []
    cursor = ""
    while True:
        page = (await client.get(f"/v1/allies?limit=1{cursor}", headers=tokens.employee)).json()
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == ids


async def test_bad_cursors_are_422(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    """Hand-made ones (tests/core/test_cursors.py covers every list and every kind)."""
    for values in (["Ally", "not-a-uuid"], ["only-one"], ["Ally", str(uuid.uuid4())]):
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
        assert_problem(
            await client.get(f"/v1/allies?cursor={cursor}", headers=tokens.employee), 422
        )
    assert_problem(await client.get("/v1/allies?cursor=bm9wZQ", headers=tokens.employee), 422)


async def test_coordinator_review_queue_by_status(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await active_ally(client, tokens, "a", display_name="Active")
    await volunteer(client, tokens, "b", display_name="Applied")
    retired = await active_ally(client, tokens, "c", display_name="Retired")
    await client.post(f"/v1/allies/{retired['id']}/retire", headers=tokens.coordinator)
    queue = await client.get("/v1/allies?status=applied", headers=tokens.coordinator)
    assert queue.status_code == 200
    [item] = queue.json()["items"]
    assert item["display_name"] == "Applied"
    assert item["status"] == "applied"
    assert item["listed"] is False
    assert await names(client, "?status=retired", tokens.coordinator) == ["Retired"]
    # Without status a coordinator sees the directory, in the coordinator view.
    directory = (await client.get("/v1/allies", headers=tokens.coordinator)).json()["items"]
    assert [(i["display_name"], i["listed"]) for i in directory] == [("Active", True)]
    assert_problem(await client.get("/v1/allies?status=applied", headers=tokens.employee), 403)
    assert_problem(await client.get("/v1/allies?status=bogus", headers=tokens.coordinator), 422)


async def test_single_read_views_and_etag(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ally = await active_ally(client, tokens, "alex")
    public = await client.get(f"/v1/allies/{ally['id']}", headers=tokens.employee)
    assert public.status_code == 200
    assert "status" not in public.json()
    assert "max_open_requests" not in public.json()
    assert public.json()["display_name"] == "Alex Ally"
    coordinator = await client.get(f"/v1/allies/{ally['id']}", headers=tokens.coordinator)
    body = coordinator.json()
    assert body["status"] == "active"
    assert body["approved_at"] is not None
    assert body["listed"] is True
    assert coordinator.headers["etag"]
    own = await client.get("/v1/me/ally-profile", headers=employee(tokens, "alex"))
    assert own.headers["etag"] == coordinator.headers["etag"]


async def test_directory_auth(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ally = await active_ally(client, tokens, "alex")
    path = f"/v1/allies/{ally['id']}"
    assert_problem(await client.get("/v1/allies"), 401)
    assert_problem(await client.get(path), 401)
    assert_problem(
        await client.get("/v1/allies", headers={"Authorization": "Bearer not-a-token"}), 401
    )
    for headers in (tokens.analyst, tokens.integration):
        assert_problem(await client.get("/v1/allies", headers=headers), 403)
        assert_problem(await client.get(path, headers=headers), 403)
    assert (await client.get("/v1/allies", headers=tokens.other_org_employee)).json()["items"] == []
    assert (await client.get("/v1/allies", headers=tokens.other_org_coordinator)).json()[
        "items"
    ] == []
    assert_problem(await client.get(path, headers=tokens.other_org_employee), 404)
    assert_problem(await client.get(path, headers=tokens.other_org_coordinator), 404)
    assert_problem(await client.get(f"/v1/allies/{uuid.uuid4()}", headers=tokens.coordinator), 404)
    assert_problem(await client.get("/v1/allies/not-a-uuid", headers=tokens.employee), 422)


async def test_one_query_per_page(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    course = await required_course(session)
    for index in range(4):
        ally = await active_ally(client, tokens, f"s{index}", display_name=f"Ally {index}")
        await training_record(session, ally["id"], course)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    # Every engine: the directory reads on the autocommit one.
    engines = {
        database.engine.sync_engine,
        database.session_engine.sync_engine,
        database.autocommit.sync_engine,
    }
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        for headers in (tokens.employee, tokens.coordinator):
            statements.clear()
            response = await client.get("/v1/allies?limit=3", headers=headers)
            assert len(response.json()["items"]) == 3
            # The page is one statement, no BEGIN, no COMMIT; besides it only the read's
            # rate-limit count (and the sweep of old windows on a caller's first read).
            page = [sql for sql in statements if "rate_limit_buckets" not in sql]
            assert len(page) == 1, statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def test_language_filter_is_rfc4647_basic_filtering(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await active_ally(client, tokens, "p", display_name="Paula", languages=["pt-BR"])
    await active_ally(client, tokens, "q", display_name="Quim", languages=["pt"])
    await active_ally(client, tokens, "r", display_name="Rui", languages=["pt-PT"])
    await active_ally(client, tokens, "s", display_name="Sven", languages=["sv", "ptx"])
    await active_ally(client, tokens, "z", display_name="Zhu", languages=["zh-Hant-TW"])
    headers = tokens.employee
    assert await names(client, "?language=pt", headers) == ["Paula", "Quim", "Rui"]
    assert await names(client, "?language=PT-br", headers) == ["Paula"]
    assert await names(client, "?language=sv", headers) == ["Sven"]  # "ptx" is not "pt"
    assert await names(client, "?language=zh", headers) == ["Zhu"]
    assert await names(client, "?language=zh-hant", headers) == ["Zhu"]
    assert await names(client, "?language=zh-TW", headers) == []
    # Suggestions rank by the same rule: a pt-BR speaker is a match for "pt".
    response = await client.get("/v1/allies/suggestions?language=pt&limit=5", headers=headers)
    assert response.status_code == 200
    ranked = [ally["display_name"] for ally in response.json()]
    assert set(ranked[:3]) == {"Paula", "Quim", "Rui"}
