"""Suggestions: listed, accepting, room in the load snapshot; ranking incl. the department rule.

Loads are set, then the snapshot is taken (as the background job does each period); allies
equal on every criterion come in the day's keyed tie-break order (``by_tiebreak``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.allies.ranking import refresh_rank_bands, tiebreak, tiebreak_key
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.allies.factories import active_ally, volunteer
from tests.helpers import TokenFactory, assert_problem

PATH = "/v1/allies/suggestions"


async def ally_with_load(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    name: str,
    load: int,
    **fields: Any,
) -> None:
    # No availability windows: "available now" (ranked first) must not depend on the clock.
    fields.setdefault("availability", [])
    created = await active_ally(client, tokens, name.lower(), display_name=name, **fields)
    stored = await session.get(Ally, uuid.UUID(created["id"]))
    assert stored is not None
    stored.open_requests = load
    await session.commit()
    IDS[name] = stored.id


IDS: dict[str, uuid.UUID] = {}


def by_tiebreak(settings: Settings, *names: str) -> list[str]:
    key = tiebreak_key(settings.pseudonym_key_bytes)
    return sorted(names, key=lambda name: tiebreak(key, IDS[name], datetime.now(UTC).date()))


@pytest.fixture
async def network(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    database: Database,
    settings: Settings,
) -> None:
    london, paris = "Europe/London", "Europe/Paris"
    await ally_with_load(
        client, tokens, session, "Amy", 0, department="MARKETING", topics=["stress"],
        languages=["en-GB"], timezone=london,
    )  # fmt: skip
    await ally_with_load(
        client, tokens, session, "Bo", 1, department="Sales", topics=["stress"],
        languages=["fr"], timezone=london,
    )  # fmt: skip
    await ally_with_load(
        client, tokens, session, "Cat", 0, department="Sales", topics=["grief"],
        languages=["en-GB"], timezone=london,
    )  # fmt: skip
    await ally_with_load(
        client, tokens, session, "Dan", 2, department="Sales", topics=["stress"],
        languages=["en-GB"], timezone=london,
    )  # fmt: skip
    await ally_with_load(
        client, tokens, session, "Eve", 3, department="Sales", topics=["stress"],
        languages=["en-GB"], timezone=london,
    )  # fmt: skip  # full: 3 of 3
    await ally_with_load(
        client, tokens, session, "Gus", 0, department=None, topics=["stress"],
        languages=["en-GB"], timezone=paris,
    )  # fmt: skip
    await volunteer(client, tokens, "fay", display_name="Fay", topics=["stress"])  # not listed
    await active_ally(client, tokens, "hal", display_name="Hal", accepting=False)
    await refresh_rank_bands(database, settings)  # bands: Amy, Bo, Cat, Gus 0; Dan 1; Eve full


async def suggested(client: httpx.AsyncClient, query: str, headers: dict[str, str]) -> list[str]:
    response = await client.get(PATH + query, headers=headers)
    assert response.status_code == 200, response.text
    for item in response.json():
        assert "status" not in item
        assert "max_open_requests" not in item
    return [item["display_name"] for item in response.json()]


@pytest.mark.usefixtures("network")
async def test_ranking_with_every_criterion(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    # tokens.employee carries department=Marketing: Amy, a perfect match, still comes last.
    query = "?topic=Stress&language=en-gb&timezone=Europe/London"
    assert await suggested(client, query, tokens.employee) == ["Dan", "Gus", "Bo", "Cat", "Amy"]


@pytest.mark.usefixtures("network")
async def test_lighter_band_first_without_preferences(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    everyone = await suggested(client, "?limit=20", tokens.employee)
    assert everyone == [*by_tiebreak(settings, "Bo", "Cat", "Gus"), "Dan", "Amy"]
    assert await suggested(client, "", tokens.employee) == everyone[:5]
    assert await suggested(client, "?limit=2", tokens.employee) == everyone[:2]


@pytest.mark.usefixtures("network")
async def test_same_department_opt_in_and_callers_without_department(
    client: httpx.AsyncClient, tokens: TokenFactory, settings: Settings
) -> None:
    query = "?topic=stress&language=en-GB&timezone=Europe/London&same_department=true"
    assert await suggested(client, query, tokens.employee) == ["Amy", "Dan", "Gus", "Bo", "Cat"]
    no_department = tokens.headers("emp-2", "employee")
    assert await suggested(client, "?topic=stress", no_department) == [
        *by_tiebreak(settings, "Amy", "Bo", "Gus"),
        "Dan",
        "Cat",
    ]
    sales = tokens.headers("emp-3", "employee", department=" sales ")
    assert await suggested(client, "", sales) == [
        *by_tiebreak(settings, "Amy", "Gus"),
        *by_tiebreak(settings, "Bo", "Cat"),
        "Dan",
    ]


@pytest.mark.usefixtures("network")
async def test_suggestions_bad_input(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    for query in (
        "?limit=0",
        "?limit=21",
        "?timezone=Mars/Olympus",
        "?language=not%20a%20tag",
        "?topic=" + "x" * 65,
        "?same_department=maybe",
    ):
        assert_problem(await client.get(PATH + query, headers=tokens.employee), 422)


@pytest.mark.usefixtures("network")
async def test_suggestions_auth(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    assert_problem(await client.get(PATH), 401)
    for headers in (tokens.analyst, tokens.integration):
        assert_problem(await client.get(PATH, headers=headers), 403)
    coordinator_only = tokens.headers("coord-2", "coordinator")
    assert_problem(await client.get(PATH, headers=coordinator_only), 403)
    # Another organisation sees none of these allies.
    assert await suggested(client, "", tokens.other_org_employee) == []
