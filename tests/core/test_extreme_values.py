"""No date, however extreme, is a 500: each value that once was, and its neighbours.

Report and summary days are accepted from 1970-01-01 to 9998-12-31 (docs/validation.md): the
calendar arithmetic behind them (whole weeks and months, a year back for defaults) stays
within the years dates can hold. Outside that range, or not a date at all, the answer is a
422 naming the parameter. (Cursors: tests/core/test_cursors.py; token claims:
tests/security/test_token_bounds.py; every parameter of every list: the route sweep.)
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import TokenFactory, assert_problem

REPORT = "/v1/reports/program"
SUMMARY = "/v1/feedback/summary"

ONCE_500 = [
    (REPORT, "from=9999-12-25&to=9999-12-31"),
    (REPORT, "from=9999-12-25&to=9999-12-31&interval=month"),
    (SUMMARY, "from=9999-12-01&to=9999-12-31"),
    (SUMMARY, "to=0001-03-01"),
]
OUT_OF_RANGE = [
    "from=0001-01-01&to=0001-01-07",
    "from=1969-12-31",
    "to=9999-01-01",
    "from=9999-12-31",
    "to=0001-01-01",
    "from=0000-01-01",
    "to=10000-01-01",
    "from=2026-02-30",
    "to=2026-13-01",
    "from=26-01-01",
]


@pytest.mark.parametrize(("path", "query"), ONCE_500)
async def test_the_dates_that_gave_500s_are_422s(
    client: httpx.AsyncClient, tokens: TokenFactory, path: str, query: str
) -> None:
    body = assert_problem(await client.get(f"{path}?{query}", headers=tokens.coordinator), 422)
    assert body["errors"][0]["loc"][0] == "query"


@pytest.mark.parametrize("path", [REPORT, SUMMARY])
@pytest.mark.parametrize("query", OUT_OF_RANGE)
async def test_days_outside_the_range_are_422s(
    client: httpx.AsyncClient, tokens: TokenFactory, path: str, query: str
) -> None:
    assert_problem(await client.get(f"{path}?{query}", headers=tokens.coordinator), 422)


@pytest.mark.parametrize(
    "query",
    [
        "from=1970-01-01&to=1970-01-31",  # the first day: its week starts in 1969
        "from=9998-12-01&to=9998-12-31",  # the last day: its week ends in 9999
        "from=9998-12-01&to=9998-12-31&interval=month",
        "to=1970-01-01",  # the default range reaches a year back, into 1969
    ],
)
async def test_the_edges_of_the_range_compute(
    client: httpx.AsyncClient, tokens: TokenFactory, query: str
) -> None:
    for path in (REPORT, SUMMARY):
        params = query.replace("&interval=month", "") if path == SUMMARY else query
        response = await client.get(f"{path}?{params}", headers=tokens.coordinator)
        assert response.status_code == 200, (path, params, response.text)


async def test_a_url_that_cannot_be_parsed_is_a_422(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """``urlsplit("http://[")`` raises: the subscription answer is a 422 (found by
    Schemathesis)."""
    for url in ("http://[", "https://[::1", "https://]x["):
        response = await client.post(
            "/v1/webhooks", json={"url": url, "events": ["ally.listed"]}, headers=tokens.coordinator
        )
        assert_problem(response, 422)


async def test_a_nul_in_a_body_key_never_comes_back(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """Validation errors name the offending key, but never with a NUL (the contract's strings
    hold none)."""
    response = await client.post(
        "/v1/feedback",
        json={"category": "programme", "rating": 4, "odd\u0000key": 1},
        headers=tokens.employee,
    )
    body = assert_problem(response, 422)
    assert "\\u0000" not in response.text
    assert body["errors"][0]["loc"] == ["body", "odd\ufffdkey"]
