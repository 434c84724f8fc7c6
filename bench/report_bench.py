"""Time ``GET /v1/reports/program`` against the seeded database (bench/seed_reports.py).

    .venv/bin/python bench/report_bench.py --runs 20

Runs each report shape through the real ASGI app (token check, SQL, release rule,
suppression, JSON) with httpx, after one warm-up call, and prints p50/p95/max in
milliseconds. Target for a one-year weekly report over 1,000,000 requests and 100,000
feedback rows: under 300 ms.

Cells stay in ``report_cells`` until a contribution arrives in their bucket (reports/cells.py)
and the background runner renews them right after each arrival pass. Three cases:

- "cached": nothing arrived since the last computation (the steady state between passes);
- "recent": the cells of the last six weeks were invalidated before each call (outside the
  timing) and are computed on the request path: a report read between an arrival pass that
  touched all recent weeks and the runner's renewal, the worst steady case; it is the same
  work as the former "warm" case (settled periods cached, the last ~5 weeks live);
- "cold": ``report_cells`` emptied before each call, every period computed from the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from allyapi.app import create_app
from allyapi.core.auth.tokens import mint_dev_token
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1/allyapi_bench"
ORG = "bench"


def shapes() -> dict[str, str]:
    today = date.today()
    year = f"from={today - timedelta(days=364)}&to={today}"
    return {
        "1 year weekly": f"interval=week&{year}",
        "1 year weekly by topic": f"interval=week&{year}&group_by=topic",
        "1 year weekly by urgency": f"interval=week&{year}&group_by=urgency",
        "2 years monthly by topic": (
            f"interval=month&from={today - timedelta(days=729)}&to={today}&group_by=topic"
        ),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    settings = Settings(
        env="test",
        data_dir=Path(tempfile.mkdtemp()),
        database_url=os.environ.get("ALLYAPI_BENCH_URL", DEFAULT_URL),
        jwt_secret=secrets.token_urlsafe(48),
        pseudonym_key=secrets.token_urlsafe(48),
        data_keys="b1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        log_level="WARNING",
    )
    database = Database(settings)
    app = create_app(settings, database)
    token = mint_dev_token(settings, sub="bench-analyst", org=ORG, roles=["analyst"])
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    # The buckets that were "live" before (any bucket ending within the last 35 days).
    settled_before = date.today() - timedelta(days=35)
    invalidate = {
        "cached": None,
        "recent": sa.text(
            "DELETE FROM report_cells WHERE (interval = 'week' AND bucket > :week)"
            " OR (interval = 'month' AND bucket >= :month)"
        ).bindparams(week=settled_before - timedelta(days=7), month=settled_before.replace(day=1)),
        "cold": sa.text("DELETE FROM report_cells"),
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for case, statement in invalidate.items():
            for name, query in shapes().items():
                url = f"/v1/reports/program?{query}"
                warm = await client.get(url, headers=headers)
                warm.raise_for_status()
                timings = []
                for _ in range(args.runs if case != "cold" else max(3, args.runs // 4)):
                    if statement is not None:
                        async with database.engine.begin() as connection:
                            await connection.execute(statement)
                    started = time.perf_counter()
                    response = await client.get(url, headers=headers)
                    timings.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                report(f"{case} {name}", timings, warm.json())
    await database.dispose()


def report(name: str, timings: list[float], body: dict[str, object]) -> None:
    timings.sort()
    p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
    periods = body["periods"]
    assert isinstance(periods, list)
    print(
        f"{name:33} p50 {statistics.median(timings):7.1f} ms   p95 {p95:7.1f} ms   "
        f"max {timings[-1]:7.1f} ms   ({len(periods)} periods, {len(timings)} runs)"
    )


if __name__ == "__main__":
    asyncio.run(main())
