"""Availability people can search by: weekly windows in each ally's own time zone.

The directory's ``available_at`` is checked at fixed instants around daylight-saving changes
(Europe/London on the last Sundays of March and October 2026, America/New_York in March),
at midnight, for an ally without a timezone, and with keyset pagination. ``available_now``
and the suggestions use the present, so their allies are available always or never.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import AllyWindow
from tests.allies.factories import active_ally, employee
from tests.helpers import TokenFactory, assert_problem

DIRECTORY = "/v1/allies"
ALWAYS = [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(1, 8)]


def window(weekday: int, start: str, end: str) -> dict[str, Any]:
    return {"weekday": weekday, "start": start, "end": end}


async def names_at(
    client: httpx.AsyncClient, tokens: TokenFactory, instant: str, **params: Any
) -> list[str]:
    response = await client.get(
        DIRECTORY, params={"available_at": instant, **params}, headers=tokens.employee
    )
    assert response.status_code == 200, response.text
    return [ally["display_name"] for ally in response.json()["items"]]


@pytest.fixture
async def zones(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    # London: Sundays 01:00-02:00 (the hour that is skipped in March and happens twice in
    # October) and 09:00-10:00.
    await active_ally(
        client, tokens, "lon", display_name="London", timezone="Europe/London",
        availability=[window(7, "01:00", "02:00"), window(7, "09:00", "10:00")],
    )  # fmt: skip
    await active_ally(
        client, tokens, "nyc", display_name="New York", timezone="America/New_York",
        availability=[window(1, "09:00", "17:00")],
    )  # fmt: skip
    # Tokyo: Friday evening into Saturday morning, as two windows that touch at midnight.
    await active_ally(
        client, tokens, "tyo", display_name="Tokyo", timezone="Asia/Tokyo",
        availability=[window(5, "22:00", "24:00"), window(6, "00:00", "02:00")],
    )  # fmt: skip
    # Every hour of every day, but no timezone: the windows name no instant.
    await active_ally(
        client, tokens, "nowhere", display_name="Nowhere", timezone=None, availability=ALWAYS
    )


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # A week before the change London is on GMT (UTC+0): 09:30 UTC is 09:30 there.
        ("2026-03-22T09:30:00Z", ["London"]),
        ("2026-03-22T08:30:00Z", []),
        # On the last Sunday of March, from 01:00 UTC, London is on BST (UTC+1).
        ("2026-03-29T08:30:00Z", ["London"]),
        ("2026-03-29T09:30:00Z", []),
        # 01:00-02:00 local does not exist that day: 00:30 UTC is 00:30 GMT, 01:30 UTC is
        # 02:30 BST.
        ("2026-03-29T00:30:00Z", []),
        ("2026-03-29T01:30:00Z", []),
        # On the last Sunday of October 01:00-02:00 local happens twice: in BST, then in GMT.
        ("2026-10-25T00:30:00Z", ["London"]),
        ("2026-10-25T01:30:00Z", ["London"]),
        ("2026-10-25T02:30:00Z", []),
        ("2026-10-25T09:30:00Z", ["London"]),
        # The same instant written with another offset is the same instant.
        ("2026-10-25T10:30:00+01:00", ["London"]),
        # New York on EST (UTC-5), then on EDT (UTC-4) from 8 March 2026.
        ("2026-03-02T14:30:00Z", ["New York"]),
        ("2026-03-02T13:30:00Z", []),
        ("2026-03-09T13:30:00Z", ["New York"]),
        ("2026-03-09T21:30:00Z", []),
        # Monday 16:59 in New York is already Tuesday in Tokyo; 17:00 is outside.
        ("2026-03-09T16:59:00-04:00", ["New York"]),
        ("2026-03-09T17:00:00-04:00", []),
        # Tokyo (UTC+9), Friday 4 December 2026: the start is inside, the end outside, and
        # the two windows meet at midnight with no gap.
        ("2026-12-04T13:00:00Z", ["Tokyo"]),
        ("2026-12-04T12:59:00Z", []),
        ("2026-12-04T14:59:00Z", ["Tokyo"]),
        ("2026-12-04T15:00:00Z", ["Tokyo"]),
        ("2026-12-04T16:59:00Z", ["Tokyo"]),
        ("2026-12-04T17:00:00Z", []),
    ],
)
@pytest.mark.usefixtures("zones")
async def test_available_at_follows_each_allys_own_zone(
    client: httpx.AsyncClient, tokens: TokenFactory, instant: str, expected: list[str]
) -> None:
    assert await names_at(client, tokens, instant) == expected


@pytest.mark.usefixtures("zones")
async def test_an_ally_without_a_timezone_is_never_available(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    everyone = await client.get(DIRECTORY, headers=tokens.employee)
    assert "Nowhere" in [ally["display_name"] for ally in everyone.json()["items"]]
    for instant in ("2026-03-22T09:30:00Z", "2026-07-01T12:00:00Z", "2026-12-04T15:00:00Z"):
        assert "Nowhere" not in await names_at(client, tokens, instant)
    now = await client.get(DIRECTORY, params={"available_now": "true"}, headers=tokens.employee)
    assert "Nowhere" not in [ally["display_name"] for ally in now.json()["items"]]
    # Once they say where they are, their windows count.
    response = await client.patch(
        "/v1/me/ally-profile", json={"timezone": "UTC"}, headers=employee(tokens, "nowhere")
    )
    assert response.status_code == 200, response.text
    assert "Nowhere" in await names_at(client, tokens, "2026-07-01T12:00:00Z")
    # And clearing it takes them out again; the stored rows follow the profile.
    response = await client.patch(
        "/v1/me/ally-profile", json={"timezone": None}, headers=employee(tokens, "nowhere")
    )
    assert response.status_code == 200, response.text
    assert "Nowhere" not in await names_at(client, tokens, "2026-07-01T12:00:00Z")


async def test_changing_windows_changes_the_answer(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(
        client, tokens, "sam", display_name="Sam", timezone="UTC",
        availability=[window(3, "09:00", "10:00"), window(3, "09:00", "10:00")],
    )  # fmt: skip
    rows = (await session.execute(select(AllyWindow))).scalars().all()
    assert [(r.weekday, r.start_minute, r.end_minute) for r in rows] == [(3, 540, 600)]
    assert await names_at(client, tokens, "2026-12-02T09:15:00Z") == ["Sam"]
    response = await client.patch(
        "/v1/me/ally-profile",
        json={"availability": [window(4, "09:00", "10:00")]},
        headers=employee(tokens, "sam"),
    )
    assert response.status_code == 200, response.text
    assert await names_at(client, tokens, "2026-12-02T09:15:00Z") == []
    assert await names_at(client, tokens, "2026-12-03T09:15:00Z") == ["Sam"]
    assert ally["availability"] == [window(3, "09:00", "10:00")] * 2  # shown as written


async def test_available_now_and_pagination_with_the_filter(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """Pages are full and exact: the filter is in the statement, not applied afterwards."""
    available = [f"Avail {i}" for i in range(5)]
    for i, name in enumerate(available):
        await active_ally(
            client, tokens, f"a{i}", display_name=name, timezone="Pacific/Auckland",
            availability=ALWAYS,
        )  # fmt: skip
    for i in range(4):
        # Interleaved by name with the available ones; never available.
        await active_ally(
            client, tokens, f"b{i}", display_name=f"Avail {i}b", timezone="UTC", availability=[]
        )
    for params in ({"available_now": "true"}, {"available_at": "2026-12-04T15:00:00Z"}):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            query = {**params, "limit": "2", **({"cursor": cursor} if cursor else {})}
            response = await client.get(DIRECTORY, params=query, headers=tokens.employee)
            assert response.status_code == 200, response.text
            page = response.json()
            names = [ally["display_name"] for ally in page["items"]]
            if page["next_cursor"] is not None:
                assert len(names) == 2
            seen += names
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == available
        assert pages == 3


async def test_available_now_false_filters_nothing(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await active_ally(client, tokens, "x", display_name="Never", timezone="UTC", availability=[])
    response = await client.get(
        DIRECTORY, params={"available_now": "false"}, headers=tokens.employee
    )
    assert [ally["display_name"] for ally in response.json()["items"]] == ["Never"]


async def test_coordinators_filter_any_status_by_availability(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    created = await client.post(
        DIRECTORY,
        json={"display_name": "Applicant", "timezone": "UTC", "availability": ALWAYS},
        headers=employee(tokens, "applicant"),
    )
    assert created.status_code == 201
    response = await client.get(
        DIRECTORY,
        params={"status": "applied", "available_now": "true"},
        headers=tokens.coordinator,
    )
    assert [ally["display_name"] for ally in response.json()["items"]] == ["Applicant"]


@pytest.mark.parametrize(
    "params",
    [
        {"available_at": "2026-12-04T15:00:00Z", "available_now": "true"},
        {"available_at": "2026-12-04T15:00:00Z", "available_now": "false"},
        {"available_at": "2026-12-04T15:00:00"},  # no offset
        {"available_at": "2026-12-04"},
        {"available_at": "1999-12-31T23:59:59Z"},
        {"available_at": "2100-01-01T00:00:00Z"},
        {"available_at": "0001-01-01T00:00:00+01:00"},
        {"available_at": "9999-12-31T23:59:59-01:00"},
        {"available_at": "soon"},
        {"available_now": "maybe"},
    ],
)
async def test_bad_availability_filters_are_422(
    client: httpx.AsyncClient, tokens: TokenFactory, params: dict[str, str]
) -> None:
    response = await client.get(DIRECTORY, params=params, headers=tokens.employee)
    body = assert_problem(response, 422)
    assert "2026" not in body["detail"] or "available" in body["detail"]


async def test_other_orgs_allies_are_never_in_the_filtered_directory(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await active_ally(client, tokens, "here", display_name="Here", timezone="UTC",
                      availability=ALWAYS)  # fmt: skip
    response = await client.get(
        DIRECTORY, params={"available_now": "true"}, headers=tokens.other_org_employee
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_suggestions_rank_allies_available_now_first(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """Availability comes before topic and language, after the department rule."""
    for i in range(3):
        await active_ally(
            client, tokens, f"free{i}", display_name=f"Free {i}", timezone="UTC",
            availability=ALWAYS, topics=["other"], department="Engineering",
        )  # fmt: skip
        await active_ally(
            client, tokens, f"busy{i}", display_name=f"Busy {i}", timezone="UTC",
            availability=[], topics=["stress"], department="Engineering",
        )  # fmt: skip
    await active_ally(
        client, tokens, "colleague", display_name="Colleague", timezone="UTC",
        availability=ALWAYS, topics=["stress"], department="Marketing",
    )  # fmt: skip
    response = await client.get(
        "/v1/allies/suggestions", params={"topic": "stress", "limit": "7"},
        headers=tokens.employee,  # department Marketing
    )  # fmt: skip
    names = [ally["display_name"] for ally in response.json()]
    assert [name.split()[0] for name in names] == ["Free"] * 3 + ["Busy"] * 3 + ["Colleague"]


async def test_the_409_alternatives_rank_available_allies_first(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    closed = await active_ally(client, tokens, "closed", display_name="Closed", timezone="UTC")
    response = await client.patch(
        "/v1/me/ally-profile", json={"accepting": False}, headers=employee(tokens, "closed")
    )
    assert response.status_code == 200
    await active_ally(client, tokens, "busy", display_name="Busy", availability=[])
    await active_ally(client, tokens, "busier", display_name="Busier", availability=[])
    await active_ally(
        client, tokens, "free", display_name="Free", timezone="UTC", availability=ALWAYS
    )
    response = await client.post(
        "/v1/contact-requests",
        json={"ally_id": closed["id"], "topic": "stress", "message": "Could we talk?"},
        headers=employee(tokens, "asker"),
    )
    body = assert_problem(response, 409)
    assert body["alternatives"][0]["display_name"] == "Free"
