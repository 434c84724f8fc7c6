from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.reports.models import ReportCellCache
from tests.feedback.factories import ally, contact_request
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem

REPORT = "/v1/reports/program"
HIDDEN = {"value": None, "suppressed": True}
# Last week (recent, so computed live rather than served from the settled-period cache).
MONDAY = date.today() - timedelta(days=date.today().weekday() + 7)
WEDNESDAY = datetime.combine(MONDAY + timedelta(days=2), time(10), tzinfo=UTC)
WEEK = f"from={MONDAY}&to={MONDAY + timedelta(days=6)}"
LABEL = "{}-W{:02d}".format(*MONDAY.isocalendar()[:2])


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
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await requests_in_week(session, tokens, 4)
    # One person with many requests is still one person.
    for _ in range(3):
        await contact_request(session, tokens, "r-0", created_at=WEDNESDAY)
    report = await get(client, WEEK, tokens.analyst)
    assert [p["label"] for p in report["periods"]] == [LABEL]
    assert report["periods"][0]["total"]["requests_created"] == HIDDEN

    await requests_in_week(session, tokens, 1, prefix="r-new")
    total = (await get(client, WEEK, tokens.analyst))["periods"][0]["total"]
    assert total["requests_created"] == {"value": 8, "suppressed": False}


async def test_figures_of_a_period(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
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
    total = (await get(client, WEEK, tokens.coordinator))["periods"][0]["total"]
    assert total["requests_created"]["value"] == 5
    assert total["requests_accepted"]["value"] == 5
    assert total["requests_completed"]["value"] == 5
    assert total["median_hours_to_accept"] == {"value": 3.0, "suppressed": False}
    assert total["signposting_rate"] == {"value": 0.4, "suppressed": False}
    assert total["ally_wellbeing_average"] == {"value": 3.0, "suppressed": False}
    assert total["feedback_rating_average"] == HIDDEN  # no feedback at all


async def test_wellbeing_counts_distinct_allies(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    helper = await ally(session, tokens, "ally-1")
    await requests_in_week(session, tokens, 6, ally_id=helper.id, wellbeing=2)
    total = (await get(client, WEEK, tokens.coordinator))["periods"][0]["total"]
    assert total["requests_created"]["value"] == 6
    assert total["ally_wellbeing_average"] == HIDDEN  # six requests, one ally


async def test_total_minus_visible_cells_recovers_nothing(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await requests_in_week(session, tokens, 2, prefix="high", urgency="high")
    await requests_in_week(session, tokens, 6, prefix="normal", urgency="normal")
    await requests_in_week(session, tokens, 9, prefix="low", urgency="low")
    period = (await get(client, f"{WEEK}&group_by=urgency", tokens.analyst))["periods"][0]
    cells = {group["key"]: group["cells"]["requests_created"] for group in period["groups"]}
    total = period["total"]["requests_created"]
    assert total == {"value": 17, "suppressed": False}
    assert cells["high"] == HIDDEN  # 2 < k
    assert cells["normal"] == HIDDEN  # complementary: the next-smallest
    assert cells["low"] == {"value": 9, "suppressed": False}
    hidden = [key for key, cell in cells.items() if cell["suppressed"]]
    remainder = total["value"] - sum(c["value"] for c in cells.values() if not c["suppressed"])
    # What subtraction yields is the sum of ≥ 2 hidden cells holding ≥ k people, never one.
    assert len(hidden) >= 2
    assert remainder >= 5


async def test_overlapping_ranges_share_identical_cells(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await requests_in_week(session, tokens, 5)
    # A Saturday of the same week: inside the whole week both queries snap to.
    await contact_request(session, tokens, "late", created_at=WEDNESDAY + timedelta(days=3))
    wednesday = WEDNESDAY.date()
    one = await get(client, f"from={wednesday}&to={wednesday + timedelta(days=1)}", tokens.analyst)
    wider = f"from={MONDAY - timedelta(days=6)}&to={MONDAY + timedelta(days=10)}"
    two = await get(client, wider, tokens.analyst)
    assert (one["starts_on"], one["ends_on"]) == (str(MONDAY), str(MONDAY + timedelta(days=6)))
    assert len(two["periods"]) == 3
    shared = next(p for p in two["periods"] if p["label"] == LABEL)
    assert one["periods"] == [shared]
    assert shared["total"]["requests_created"]["value"] == 6


async def test_topics_are_the_ones_allies_offer_others_fold_into_other(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await ally(session, tokens, "ally-1", topics=["stress", "grief"])
    await ally(session, tokens, "ally-2", topics=["stress", "sleep"])
    await requests_in_week(session, tokens, 6, prefix="s", topic="stress")
    await requests_in_week(session, tokens, 5, prefix="g", topic="grief")
    await requests_in_week(session, tokens, 1, prefix="x", topic="rarething")
    period = (await get(client, f"{WEEK}&group_by=topic", tokens.analyst))["periods"][0]
    keys = [group["key"] for group in period["groups"]]
    assert keys == ["grief", "sleep", "stress", "(other)"]  # never "rarething"
    cells = {group["key"]: group["cells"]["requests_created"] for group in period["groups"]}
    assert cells["stress"] == {"value": 6, "suppressed": False}
    # sleep (0) and (other) (1) are hidden; together < k, so grief (5) is hidden too.
    assert cells["sleep"] == cells["(other)"] == cells["grief"] == HIDDEN
    assert period["total"]["requests_created"] == {"value": 12, "suppressed": False}


async def test_settled_periods_are_cached_for_a_day(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    old_monday = MONDAY - timedelta(weeks=10)
    old = datetime.combine(old_monday + timedelta(days=1), time(9), tzinfo=UTC)
    query = f"from={old_monday}&to={old_monday}"
    for index in range(4):
        await contact_request(session, tokens, f"old-{index}", created_at=old)
    first = await get(client, query, tokens.analyst)
    assert first["periods"][0]["total"]["requests_created"] == HIDDEN
    await contact_request(session, tokens, "old-late", created_at=old)
    cached = await get(client, query, tokens.analyst)
    assert cached["periods"] == first["periods"]  # served from report_cells

    await session.execute(
        sa.update(ReportCellCache).values(computed_at=datetime.now(UTC) - timedelta(hours=25))
    )
    await session.commit()
    refreshed = await get(client, query, tokens.analyst)
    assert refreshed["periods"][0]["total"]["requests_created"] == {
        "value": 5,
        "suppressed": False,
    }


async def test_monthly_feedback_averages_and_current_figures(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
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
    today = date.today()
    report = await get(client, f"interval=month&from={today}&to={today}", tokens.analyst)
    total = report["periods"][0]["total"]
    assert total["feedback_rating_average"] == {"value": 5.0, "suppressed": False}
    assert total["feedback_felt_heard_rate"] == {"value": 0.8, "suppressed": False}
    assert report["current"] == {
        "listed_allies": 1,
        "active_allies": 1,
        "training_compliance": 1.0,
    }


async def test_default_range_is_the_last_year_of_weeks(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    report = await get(client, "", tokens.coordinator)
    assert report["interval"] == "week"
    assert len(report["periods"]) in (53, 54)
    assert report["k"] == 5


async def test_other_org_data_never_counts(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await requests_in_week(session, tokens, 5, org=OTHER_ORG)
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
