from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.reports.cells import CellSource
from allyapi.reports.models import ReportCellCache
from allyapi.topics.defaults import DEFAULT_TOPICS
from tests.feedback.factories import ally, contact_request
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem

REPORT = "/v1/reports/program"
HIDDEN = {"value": None, "suppressed": True}
# Last week (recent, so computed live rather than served from the settled-period cache).
MONDAY = date.today() - timedelta(days=date.today().weekday() + 7)
WEDNESDAY = datetime.combine(MONDAY + timedelta(days=2), time(10), tzinfo=UTC)
WEEK = f"from={MONDAY}&to={MONDAY + timedelta(days=6)}"
LABEL = "{}-W{:02d}".format(*MONDAY.isocalendar()[:2])
Arrive = Callable[[], Awaitable[int]]


async def requests_in_week(
    session: AsyncSession, tokens: TokenFactory, count: int, prefix: str = "r", **fields: Any
) -> None:
    for index in range(count):
        await contact_request(session, tokens, f"{prefix}-{index}", created_at=WEDNESDAY, **fields)


async def get(client: httpx.AsyncClient, query: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"{REPORT}?{query}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_four_then_five_requesters_flip_a_cell(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    await requests_in_week(session, tokens, 4)
    # One person with many requests is still one person.
    for _ in range(3):
        await contact_request(session, tokens, "r-0", created_at=WEDNESDAY)
    await arrive()
    report = await get(client, WEEK, tokens.analyst)
    assert [p["label"] for p in report["periods"]] == [LABEL]
    assert report["periods"][0]["total"]["requests_created"] == HIDDEN

    await requests_in_week(session, tokens, 1, prefix="r-new")
    await arrive()
    total = (await get(client, WEEK, tokens.analyst))["periods"][0]["total"]
    assert total["requests_created"] == {"value": 8, "suppressed": False}


async def test_figures_of_a_period(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    allies = [await ally(session, tokens, f"ally-{i}") for i in range(5)]
    for index, hours in enumerate((1, 2, 3, 4, 10)):
        await contact_request(
            session,
            tokens,
            f"req-{index}",
            ally_id=allies[index].id,
            created_at=WEDNESDAY,
            accepted_after=timedelta(hours=hours),
            signposted=index < 2,
            wellbeing=index + 1,
        )
    await arrive()
    total = (await get(client, WEEK, tokens.coordinator))["periods"][0]["total"]
    assert total["requests_created"]["value"] == 5
    assert total["requests_accepted"]["value"] == 5
    assert total["requests_completed"]["value"] == 5
    assert total["median_hours_to_accept"] == {"value": 3.0, "suppressed": False}
    assert total["signposting_rate"] == {"value": 0.4, "suppressed": False}
    assert total["ally_wellbeing_average"] == {"value": 3.0, "suppressed": False}
    assert total["feedback_rating_average"] == HIDDEN  # no feedback at all


async def test_wellbeing_counts_distinct_allies(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    helper = await ally(session, tokens, "ally-1")
    await requests_in_week(session, tokens, 6, ally_id=helper.id, wellbeing=2)
    await arrive()
    total = (await get(client, WEEK, tokens.coordinator))["periods"][0]["total"]
    assert total["requests_created"]["value"] == 5  # six people: the first five (steps of k)
    assert total["ally_wellbeing_average"] == HIDDEN  # six requests, one ally


async def test_total_minus_visible_cells_recovers_nothing(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    # Arriving in this order: 2 high, then 6 normal, then 9 low.
    for count, urgency in ((2, "high"), (6, "normal"), (9, "low")):
        await requests_in_week(session, tokens, count, prefix=urgency, urgency=urgency)
        await arrive()
    period = (await get(client, f"{WEEK}&group_by=urgency", tokens.analyst))["periods"][0]
    cells = {group["key"]: group["cells"]["requests_created"] for group in period["groups"]}
    total = period["total"]["requests_created"]
    # 17 people: the total shows its first 15 (2 high, 6 normal, 7 low); each group shows
    # its own first five of those.
    assert total == {"value": 15, "suppressed": False}
    assert cells["high"] == HIDDEN  # 2 < k
    assert cells["normal"] == {"value": 5, "suppressed": False}
    assert cells["low"] == {"value": 5, "suppressed": False}
    remainder = total["value"] - sum(c["value"] for c in cells.values() if not c["suppressed"])
    # What subtraction yields is 2 high + 1 normal + 2 low people: ≥ k, from several cells.
    assert remainder >= 5


async def test_an_empty_hidden_group_hides_the_next_smallest(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    """Total − visible = 0 would say the hidden cell is empty: hide the next-smallest too."""
    for count, urgency in ((5, "normal"), (10, "low")):
        await requests_in_week(session, tokens, count, prefix=urgency, urgency=urgency)
        await arrive()
    period = (await get(client, f"{WEEK}&group_by=urgency", tokens.analyst))["periods"][0]
    cells = {group["key"]: group["cells"]["requests_created"] for group in period["groups"]}
    assert period["total"]["requests_created"] == {"value": 15, "suppressed": False}
    assert cells["high"] == cells["normal"] == HIDDEN
    assert cells["low"] == {"value": 10, "suppressed": False}


async def test_overlapping_ranges_share_identical_cells(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    await requests_in_week(session, tokens, 5)
    # A Saturday of the same week: inside the whole week both queries snap to.
    await contact_request(session, tokens, "late", created_at=WEDNESDAY + timedelta(days=3))
    await arrive()
    wednesday = WEDNESDAY.date()
    one = await get(client, f"from={wednesday}&to={wednesday + timedelta(days=1)}", tokens.analyst)
    wider = f"from={MONDAY - timedelta(days=6)}&to={MONDAY + timedelta(days=10)}"
    two = await get(client, wider, tokens.analyst)
    assert (one["starts_on"], one["ends_on"]) == (str(MONDAY), str(MONDAY + timedelta(days=6)))
    assert len(two["periods"]) == 3
    shared = next(p for p in two["periods"] if p["label"] == LABEL)
    assert one["periods"] == [shared]
    assert shared["total"]["requests_created"]["value"] == 5  # six people: the first five


async def test_topic_groups_come_from_the_list_never_from_profiles_or_requests(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    # Volunteers' profiles name topics; none of them becomes a group (no steering).
    await ally(session, tokens, "ally-1", topics=["stress", "pregnancy"])
    await ally(session, tokens, "ally-2", status="applied", topics=["divorce", "sleep"])
    for count, topic in ((6, "stress"), (5, "grief"), (1, "rarething")):
        await requests_in_week(session, tokens, count, prefix=topic, topic=topic)
        await arrive()
    period = (await get(client, f"{WEEK}&group_by=topic", tokens.analyst))["periods"][0]
    keys = [group["key"] for group in period["groups"]]
    assert keys == [*sorted(DEFAULT_TOPICS), "(other)"]  # the built-in list; no "rarething"
    cells = {group["key"]: group["cells"]["requests_created"] for group in period["groups"]}
    # 12 people: the total shows the first 10 (6 stress, 4 grief); stress its first five.
    assert period["total"]["requests_created"] == {"value": 10, "suppressed": False}
    assert cells["stress"] == {"value": 5, "suppressed": False}
    assert cells["grief"] == cells["(other)"] == cells["sleep"] == HIDDEN


async def test_cells_are_cached_until_a_contribution_arrives_in_their_bucket(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    arrive: Arrive,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old_monday = MONDAY - timedelta(weeks=10)
    old = datetime.combine(old_monday + timedelta(days=1), time(9), tzinfo=UTC)
    query = f"from={old_monday}&to={MONDAY}"
    for index in range(4):
        await contact_request(session, tokens, f"old-{index}", created_at=old)
    await arrive()
    first = await get(client, query, tokens.analyst)
    assert first["periods"][0]["total"]["requests_created"] == HIDDEN

    computed: list[date] = []
    original = CellSource._compute

    async def spy(self: CellSource, org: str, start, end, ask):  # type: ignore[no-untyped-def]
        computed.append(start)
        return await original(self, org, start, end, ask)

    monkeypatch.setattr(CellSource, "_compute", spy)
    await contact_request(session, tokens, "old-late", created_at=old)
    assert await get(client, query, tokens.analyst) == first  # not arrived: nothing moves
    assert computed == []  # every cell came from report_cells

    await contact_request(session, tokens, "elsewhere", created_at=WEDNESDAY)
    await arrive()
    again = await get(client, query, tokens.analyst)
    assert computed == [old_monday, MONDAY]  # the two buckets that received something
    assert again["periods"][0]["total"]["requests_created"] == {
        "value": 5,
        "suppressed": False,
    }
    stored = (await session.execute(sa.select(ReportCellCache.arrivals))).scalars().all()
    assert sorted(stored)[-1] >= 1


async def test_monthly_feedback_averages_and_current_figures(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    helper = await ally(session, tokens, "ally-1")
    for index in range(5):
        sub = f"req-{index}"
        request = await contact_request(session, tokens, sub, ally_id=helper.id)
        response = await client.post(
            f"/v1/contact-requests/{request.id}/feedback",
            json={"rating": 5, "felt_heard": index > 0, "would_recommend": True},
            headers=tokens.headers(sub, "employee"),
        )
        assert response.status_code == 201
    await arrive()
    today = date.today()
    report = await get(client, f"interval=month&from={today}&to={today}", tokens.analyst)
    total = report["periods"][0]["total"]
    assert total["feedback_rating_average"] == {"value": 5.0, "suppressed": False}
    assert total["feedback_felt_heard_rate"] == {"value": 0.8, "suppressed": False}
    # One ally: fewer than k, so the network figures read 0 (they move in steps of k).
    assert report["current"] == {
        "listed_allies": 0,
        "active_allies": 0,
        "training_compliance": None,
    }


async def test_current_figures_move_in_steps_of_k_allies(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    for index in range(7):
        await ally(session, tokens, f"ally-{index}", accepting=index != 0)
    await ally(session, tokens, "ally-applied", status="applied")
    current = (await get(client, WEEK, tokens.analyst))["current"]
    # 6 listed, 7 active, all compliant (no required course): the first five of each.
    assert current == {"listed_allies": 5, "active_allies": 5, "training_compliance": 1.0}


async def test_default_range_is_the_last_year_of_weeks(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    report = await get(client, "", tokens.coordinator)
    assert report["interval"] == "week"
    assert len(report["periods"]) in (53, 54)
    assert report["k"] == 5


async def test_other_org_data_never_counts(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    await requests_in_week(session, tokens, 5, org=OTHER_ORG)
    await arrive()
    mine = (await get(client, WEEK, tokens.analyst))["periods"][0]["total"]
    assert mine["requests_created"] == HIDDEN
    theirs = await get(client, WEEK, tokens.headers("a-9", "analyst", org=OTHER_ORG))
    assert theirs["periods"][0]["total"]["requests_created"]["value"] == 5


async def test_roles_auth_and_bounds(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    assert_problem(await client.get(REPORT), 401)
    assert_problem(await client.get(REPORT, headers=tokens.employee), 403)
    assert_problem(await client.get(REPORT, headers=tokens.integration), 403)
    for query in (
        "from=2026-01-10&to=2026-01-01",
        "from=2020-01-01&to=2026-01-01",  # > 2 years of weeks
        "interval=month&from=2015-01-01&to=2026-01-01",  # > 5 years of months
        "interval=day",
        "group_by=ally",
        "from=yesterday",
    ):
        assert_problem(await client.get(f"{REPORT}?{query}", headers=tokens.analyst), 422)
    months = await get(client, "interval=month&from=2021-03-15&to=2026-01-02", tokens.analyst)
    assert (months["starts_on"], months["ends_on"]) == ("2021-03-01", "2026-01-31")


async def test_analysts_read_reports_but_no_individual_request(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    request = await contact_request(session, tokens, "emp-1", created_at=WEDNESDAY)
    assert (await client.get(REPORT, headers=tokens.analyst)).status_code == 200
    one = await client.get(f"/v1/contact-requests/{request.id}", headers=tokens.analyst)
    assert_problem(one, 403)
