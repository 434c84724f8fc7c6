"""/metrics: behind ALLYAPI_METRICS_TOKEN, and one sum over every worker of ``serve --workers N``.

Its per-route counters tick the moment a request is created, accepted or erased, so they are
for the operators' scraper only. With several workers a scrape reaches one of them at random:
the counters must be the sum over all of them, or they jump back and forth between scrapes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from tests.concurrency.conftest import Server, free_port
from tests.factories import process_env
from tests.helpers import assert_problem
from tests.ops.test_operations import sample
from tests.reliability.harness import stop_server, wait_healthy

TOKEN = "scrape-" + "s3cret" * 6
HEALTH = {"method": "GET", "route": "/healthz", "status": "200"}
COUNTER = "allyapi_http_requests_total"


@pytest.fixture
async def guarded(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"metrics_token": TOKEN}), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_metrics_need_the_configured_token(guarded: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer " + TOKEN[:-1]},
        {"Authorization": "Bearer " + TOKEN + "x"},
        {"Authorization": "Basic " + TOKEN},
        {"Authorization": TOKEN},
    ):
        refused = await guarded.get("/metrics", headers=headers)
        problem = assert_problem(refused, 401)
        assert "ALLYAPI_METRICS_TOKEN" in problem["detail"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "allyapi_http_requests_total" not in refused.text
    allowed = await guarded.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
    assert allowed.status_code == 200
    assert "# TYPE allyapi_http_requests_total counter" in allowed.text
    # The other operations endpoints stay open: probes carry no token.
    assert (await guarded.get("/healthz")).status_code == 200
    assert (await guarded.get("/readyz")).status_code == 200


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValueError, match="metrics_token"):
        Settings(env="test", metrics_token="short")


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


async def start_workers(settings: Settings, tmp_path: Path, workers: int) -> Server:
    port = free_port()
    log = tmp_path / "serve.log"
    env = process_env(
        settings,
        ALLYAPI_METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "allyapi", "serve", "--no-migrate", "--workers", str(workers)),
            *("--host", "127.0.0.1", "--port", str(port)),
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=sink,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    await wait_healthy(server)
    return server


def worker_pids(directory: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("counter_*.db")}


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.postgres_only
async def test_counters_are_summed_over_workers_and_never_go_back(
    settings: Settings, tmp_path: Path
) -> None:
    """``allyapi serve --workers 2``: requests on fresh connections land on both workers; every
    scrape (whichever worker answers) sees the total so far, and the total is what was sent,
    also after a worker is killed and replaced."""
    server = await start_workers(settings, tmp_path, workers=2)
    directory = tmp_path / "metrics"
    # No keep-alive: each request is a new connection, which the kernel hands to either worker.
    limits = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10, limits=limits) as http:
            sent, seen = 0, [sample(await scrape(http), COUNTER, **HEALTH)]
            for _ in range(20):
                for _ in range(10):
                    assert (await http.get("/healthz")).status_code == 200
                    sent += 1
                seen.append(sample(await scrape(http), COUNTER, **HEALTH))
            assert seen == sorted(seen), seen  # monotonic across scrapes
            assert seen[-1] - seen[0] == sent
            assert len(worker_pids(directory)) >= 2  # both workers counted some of them

            victim = min(pid for pid in worker_pids(directory) if pid != server.process.pid)
            os.kill(victim, signal.SIGKILL)
            live_file = directory / f"gauge_livesum_{victim}.db"
            for _ in range(100):  # the supervisor replaces it; the dead one's gauge goes
                text = await scrape(http)
                if not live_file.exists():
                    break
                await asyncio.sleep(0.1)
            assert not live_file.exists()
            assert sample(text, COUNTER, **HEALTH) == seen[-1]  # its counts stay in the total
            assert sample(text, "allyapi_http_requests_in_flight") == 1  # this scrape only
    finally:
        await stop_server(server)
