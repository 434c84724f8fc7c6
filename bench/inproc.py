"""Our app's own CPU per request, in process: no HTTP server, no load generator, low noise.

    .venv/bin/python bench/inproc.py directory       # or: create
    .venv/bin/python bench/inproc.py create --requests 3000 --concurrency 16

Calls the ASGI app directly (a minimal ASGI scope, the same headers and bodies as bench/run.py)
with ``--concurrency`` requests in flight, against the bench database, and prints this
process's CPU time per request (``time.process_time``: the database's work is not counted)
and the wall-clock rate. A quick, repeatable A/B while changing a hot path; bench/run.py stays
the measurement of record (real uvicorn, wrk, the baseline beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed
import workloads
from run import DIRECTORY_PATH, fixtures
from servers import bench_env

from allyapi.app import create_app
from allyapi.core.settings import load_settings


def scope_for(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    raw_path, _, query = path.partition("?")
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": raw_path, "raw_path": raw_path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip


async def call(app: Any, scope: dict[str, Any], body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def requests_for(load: workloads.Workload, count: int) -> list[tuple[dict[str, Any], bytes]]:
    if load.method == "GET":
        return [(scope_for("GET", load.path, load.headers), b"")] * count
    run = uuid.uuid4().hex
    out = []
    for i in range(count):
        _, token = load.tokens[i % len(load.tokens)]
        body = json.dumps({"ally_id": load.allies[i % len(load.allies)], **workloads.CREATE_BODY})
        headers = {
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": f"{run}-{i}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        out.append((scope_for("POST", load.path, headers), body.encode()))
    return out


async def worker(
    app: Any, queue: list[tuple[dict[str, Any], bytes]], statuses: dict[int, int]
) -> None:
    while queue:
        scope, body = queue.pop()
        status = await call(app, dict(scope, state={}), body)
        statuses[status] = statuses.get(status, 0) + 1


async def main_async(args: argparse.Namespace) -> None:
    settings = seed.bench_settings()
    allies, _ = await fixtures(settings)
    os.environ.update(bench_env(seed.bench_url(), settings))
    app = create_app(load_settings())
    if args.endpoint == "directory":
        load = workloads.directory(settings, "directory", seed.BIG, DIRECTORY_PATH)
    else:
        load = workloads.create(settings, seed.BIG, allies, workloads.REQUESTERS)
    async with app.router.lifespan_context(app):
        for label, count in (("warm-up", args.requests // 5), ("measured", args.requests)):
            queue = requests_for(load, count)
            statuses: dict[int, int] = {}

            profiler = cProfile.Profile() if args.cprofile and label == "measured" else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            await asyncio.gather(*(worker(app, queue, statuses) for _ in range(args.concurrency)))
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{label}: {count} requests, {cpu / count * 1e6:,.0f} µs CPU per request, "
                  f"{count / wall:,.0f} req/s, statuses {statuses}")  # fmt: skip
            if profiler is not None:
                stats = pstats.Stats(profiler).sort_stats(args.cprofile)
                stats.print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("endpoint", choices=["directory", "create"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--cprofile", choices=["tottime", "cumulative"], help="profile the measured phase"
    )
    parser.add_argument("--top", type=int, default=40)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
