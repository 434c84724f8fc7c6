"""Our app's own CPU per request, in process: no HTTP server, no load generator, low noise.

    .venv/bin/python bench/inproc.py directory       # or: create
    .venv/bin/python bench/inproc.py create --requests 3000 --concurrency 16
    .venv/bin/python bench/inproc.py create --phases      # where the CPU goes, per phase

Calls the ASGI app directly (a minimal ASGI scope, the same headers and bodies as bench/run.py)
with ``--concurrency`` requests in flight, against the bench database, and prints this
process's CPU time per request (``time.process_time``: the database's work is not counted)
and the wall-clock rate. A quick, repeatable A/B while changing a hot path; bench/run.py stays
the measurement of record (real uvicorn, wrk, the baseline beside it).

``--phases`` times named phases in process, one request at a time (so a phase's CPU is
its own): the token check, the rate-limit count (absent from a create on PostgreSQL: its
statement takes it), body validation, the service call, the statements run on the driver, response serialisation, and the whole ASGI call; the rest
of the total is routing, dependency solving and middleware. Timers (``time.thread_time``
deltas) wrap those functions; cProfile is not used, so the figures carry little overhead.
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
from collections import defaultdict
from collections.abc import Callable
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


PHASES: dict[str, float] = defaultdict(float)


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a coroutine function) with its CPU time added to ``PHASES[name]``."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return await function(*args, **kwargs)
        finally:
            PHASES[name] += time.thread_time() - started

    return wrapper


def install_phase_timers() -> None:
    import fastapi.dependencies.utils as fastapi_dependencies
    import fastapi.routing as fastapi_routing

    from allyapi.allies.directory import DirectoryService
    from allyapi.contact_requests.service import ContactRequestService
    from allyapi.core.auth.tokens import TokenVerifier
    from allyapi.core.db.driver import DriverStatement
    from allyapi.core.http import ratelimit

    patches: list[tuple[Any, str, str]] = [
        (TokenVerifier, "verify_async", "token check"),
        (ratelimit, "count_request", "write count (rate limit)"),
        (fastapi_dependencies, "request_body_to_args", "body validation"),
        (ContactRequestService, "create", "service: create (all of it)"),
        (DirectoryService, "page", "service: directory (all of it)"),
        (DriverStatement, "fetchrow", "statements on the driver"),
        (fastapi_routing, "serialize_response", "response serialisation"),
    ]
    for owner, attribute, name in patches:
        setattr(owner, attribute, timed(name, getattr(owner, attribute)))


def print_phases(count: int) -> None:
    total = PHASES.pop("total")
    print(f"{'phase':<28}{'µs CPU/request':>16}{'share':>8}")
    for name, seconds in sorted(PHASES.items(), key=lambda item: -item[1]):
        print(f"{name:<28}{seconds / count * 1e6:>16,.0f}{seconds / total:>8.0%}")
    print(f"{'whole ASGI call':<28}{total / count * 1e6:>16,.0f}{1:>8.0%}")


async def worker(
    app: Any, queue: list[tuple[dict[str, Any], bytes]], statuses: dict[int, int]
) -> None:
    while queue:
        scope, body = queue.pop()
        started = time.thread_time()
        status = await call(app, dict(scope, state={}), body)
        PHASES["total"] += time.thread_time() - started
        statuses[status] = statuses.get(status, 0) + 1


async def main_async(args: argparse.Namespace) -> None:
    settings = seed.bench_settings()
    allies, _ = await fixtures(settings)
    os.environ.update(bench_env(seed.bench_url(), settings))
    if args.phases:
        install_phase_timers()
        args.concurrency = 1
    app = create_app(load_settings())
    if args.endpoint == "directory":
        load = workloads.directory(settings, "directory", seed.BIG, DIRECTORY_PATH)
    else:
        load = workloads.create(settings, seed.BIG, allies, workloads.REQUESTERS)
    async with app.router.lifespan_context(app):
        for label, count in (("warm-up", args.requests // 5), ("measured", args.requests)):
            PHASES.clear()
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
        if args.phases:
            print_phases(args.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("endpoint", choices=["directory", "create"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--cprofile", choices=["tottime", "cumulative"], help="profile the measured phase"
    )
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--phases", action="store_true", help="CPU per named phase, one request at a time"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
