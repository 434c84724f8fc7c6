"""/healthz, /readyz and /metrics: open, cheap, and honest about the database."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from allyapi.app import create_app
from allyapi.core.db.migrations import downgrade, upgrade
from allyapi.core.settings import Settings
from tests.helpers import TokenFactory
from tests.migrations.scratch import PG_ENV, scratch_database


@asynccontextmanager
async def app_client(settings: Settings, url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"database_url": url}))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await app.state.database.dispose()


@pytest.fixture
def behind_url(tmp_path: Path) -> Iterator[str]:
    """A reachable database whose schema is behind: migrated to head, then back to base."""
    with scratch_database(tmp_path) as url:
        upgrade(url)
        downgrade(url, "base")
        yield url


@pytest.fixture
def unreachable_url(tmp_path: Path) -> str:
    if os.environ.get(PG_ENV):
        return "postgresql+asyncpg://nobody@127.0.0.1:9/nothing"  # discard port: refused
    return f"sqlite+aiosqlite:///{tmp_path / 'missing-folder' / 'allyapi.db'}"


async def test_healthz_is_open_and_cheap(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_readyz_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "schema_at_head": True}


async def test_readyz_is_503_when_the_schema_is_behind(settings: Settings, behind_url: str) -> None:
    async with app_client(settings, behind_url) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "database": "ok",
            "schema_at_head": False,
        }


async def test_readyz_is_503_when_the_database_is_unreachable(
    settings: Settings, unreachable_url: str
) -> None:
    async with app_client(settings, unreachable_url) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "database": "unreachable",
            "schema_at_head": False,
        }
        # Liveness does not depend on the database: restarting would not fix it.
        assert (await http.get("/healthz")).status_code == 200


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series of a Prometheus text exposition (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for series in family.samples:
            if series.name == name and series.labels == labels:
                return float(series.value)
    return 0.0


async def test_metrics_count_per_route_template_never_the_raw_id(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    before = (await client.get("/metrics")).text
    resource_id = uuid.uuid4()
    for _ in range(2):
        response = await client.get(f"/v1/resources/{resource_id}", headers=tokens.employee)
        assert response.status_code == 404
    await client.get(f"/no-such-path/{resource_id}")

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert str(resource_id) not in text
    route = {"method": "GET", "route": "/v1/resources/{resource_id}"}
    counter = "allyapi_http_requests_total"
    assert sample(text, counter, **route, status="404") - sample(
        before, counter, **route, status="404"
    ) == pytest.approx(2)
    assert sample(text, counter, method="GET", route="unmatched", status="404") >= 1

    histogram = "allyapi_http_request_duration_seconds"
    count = sample(text, histogram + "_count", **route)
    assert count - sample(before, histogram + "_count", **route) == pytest.approx(2)
    assert sample(text, histogram + "_bucket", **route, le="+Inf") == count
    assert sample(text, histogram + "_sum", **route) > 0
    assert "# TYPE allyapi_http_request_duration_seconds histogram" in text


async def test_operations_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert (await client.get(path)).status_code == 200, path
