"""Soak: minutes of steady mixed traffic against a real ``allyapi serve`` (docs/operations.md).

    .venv/bin/python bench/soak.py                  # 10 minutes at 50 req/s on PostgreSQL
    .venv/bin/python bench/soak.py --minutes 0.5    # smoke (tests/reliability/test_soak.py)

Starts one server process on loopback against a *fresh* database (a new one created on the
PostgreSQL server named by ``--database-url`` and dropped at the end; or a new SQLite file when
the URL is ``sqlite``), seeds allies, then sends requests at a steady rate (open loop: one
request every 1/rate seconds whatever the latency, at most ``--max-in-flight`` outstanding):

    directory reads, suggestions, my requests, an ally's queue (reads, ~55 %);
    creates with an Idempotency-Key (one in ten sent twice: the replay must return the same
    id), accept, thread messages from both sides, complete (writes, ~45 %).

An error is any status other than the one the operation must answer, any transport error or
timeout, or a replay that returns another id. Every 10 s it prints the server's RSS and the
counts; at the end a summary (requests, achieved rate, errors, p50/p99 per operation, RSS
start/end/peak). Exit status 1 when there was any error. Every loop is bounded by the clock,
the server is terminated (then killed) and the database dropped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from allyapi.allies.models import Ally, AllyStatus
from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.tokens import dev_subject, mint_dev_token
from allyapi.core.db.migrations import upgrade
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings

ORG = "soak"
ALLIES = 20
SAMPLE_SECONDS = 10.0
CLIENT_TIMEOUT = 10.0
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1/postgres"
# Operation mix (weights). Writes fall back to a create when their queue is empty.
MIX = {
    "directory": 25,
    "suggestions": 15,
    "my_requests": 10,
    "ally_queue": 5,
    "create": 15,
    "accept": 10,
    "message": 12,
    "complete": 8,
}
WRITES = ("create", "accept", "message", "complete")
MAX_PENDING, MAX_ACCEPTED = 20, 40  # far below ALLIES x 50 slots


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    server_cpu_seconds: float = 0.0
    rss_kb: list[tuple[float, int]] = field(default_factory=list)

    def record(self, op: str, seconds: float, ok: bool, what: str) -> None:
        self.latencies[op].append(seconds)
        self.statuses[f"{op} {what}"] += 1
        if not ok:
            self.errors[f"{op} {what}"] += 1

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.latencies.values())


@dataclass
class World:
    """What the traffic knows: allies' tokens, requests waiting for each step."""

    settings: Settings
    ally_subs: list[str]
    ally_ids: list[str]
    pending: deque[tuple[str, str, str]] = field(default_factory=deque)  # id, ally, requester
    accepted: deque[tuple[str, str, str]] = field(default_factory=deque)
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, sub: str) -> dict[str, str]:
        if sub not in self.tokens:
            self.tokens[sub] = mint_dev_token(self.settings, sub=sub, org=ORG, roles=["employee"])
        return {"Authorization": f"Bearer {self.tokens[sub]}"}


# --- the server and its database -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fresh_database(url: str, data_dir: Path) -> tuple[str, str | None]:
    """A new database: (its URL, its name on the PostgreSQL server, None for SQLite)."""
    if url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{data_dir / 'soak.db'}", None
    name = f"allyapi_soak_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


async def drop_database(url: str, name: str | None) -> None:
    if name is None:
        return
    connection = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def make_settings(database_url: str, data_dir: Path) -> Settings:
    keys = ",".join(f"k{n}:" + base64.b64encode(secrets.token_bytes(32)).decode() for n in (1,))
    return Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        jwt_secret=secrets.token_urlsafe(48),
        pseudonym_key=secrets.token_urlsafe(48),
        data_keys=keys,
    )


def server_env(settings: Settings) -> dict[str, str]:
    assert settings.jwt_secret
    assert settings.pseudonym_key
    assert settings.data_keys
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "ALLYAPI_ENV": "test",
        "ALLYAPI_DATA_DIR": str(settings.data_dir),
        "ALLYAPI_DATABASE_URL": settings.effective_database_url,
        "ALLYAPI_JWT_SECRET": settings.jwt_secret,
        "ALLYAPI_PSEUDONYM_KEY": settings.pseudonym_key,
        "ALLYAPI_DATA_KEYS": settings.data_keys,
        # The soak measures stability, not the per-caller write limit: an ally here answers
        # far more requests per minute than a person would.
        "ALLYAPI_RATE_LIMIT_WRITES_PER_MINUTE": "100000",
        "ALLYAPI_RATE_LIMIT_READS_PER_MINUTE": "100000",
        "ALLYAPI_LOG_LEVEL": "WARNING",
    }


async def start_server(settings: Settings, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "allyapi",
            "serve",
            "--no-migrate",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=server_env(settings),
            cwd=settings.data_dir,
            stdout=sink,
            stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline and process.returncode is None:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return process, base
            await asyncio.sleep(0.1)
    await stop(process)
    tail = (await asyncio.to_thread(log.read_bytes))[-2000:].decode(errors="replace")
    raise SystemExit(f"server did not start:\n{tail}")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()


async def seed_allies(settings: Settings) -> tuple[list[str], list[str]]:
    database = Database(settings)
    subs = [f"soak-ally-{n}" for n in range(ALLIES)]
    try:
        async with database.sessionmaker() as session:
            allies = [
                Ally(
                    org_id=ORG,
                    subject_ref=subject_ref(
                        settings.pseudonym_key_bytes, "ally", dev_subject(settings, ORG, sub)
                    ),
                    display_name=f"Ally {n}",
                    languages=["en"],
                    topics=["stress", "burnout"],
                    status=AllyStatus.active,
                    accepting=True,
                    max_open_requests=50,
                    approved_at=utcnow(),
                )
                for n, sub in enumerate(subs)
            ]
            session.add_all(allies)
            await session.commit()
            return subs, [str(ally.id) for ally in allies]
    finally:
        await database.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the server has used so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- the traffic ---------------------------------------------------------------------------


async def timed(stats: Stats, op: str, expected: int, call: Any) -> httpx.Response | None:
    """Run one request, record its latency and whether it answered ``expected``."""
    started = time.perf_counter()
    try:
        response: httpx.Response = await call
    except httpx.TransportError as exc:  # timeouts included
        stats.record(op, time.perf_counter() - started, False, type(exc).__name__)
        return None
    ok = response.status_code == expected
    stats.record(op, time.perf_counter() - started, ok, str(response.status_code))
    return response if ok else None


async def op_create(http: httpx.AsyncClient, world: World, stats: Stats) -> None:
    requester = f"soak-requester-{uuid.uuid4().hex[:12]}"
    n = random.randrange(ALLIES)
    body = {"ally_id": world.ally_ids[n], "topic": "stress", "message": "soak message"}
    headers = {**world.headers(requester), "Idempotency-Key": str(uuid.uuid4())}
    created = await timed(
        stats, "create", 201, http.post("/v1/contact-requests", json=body, headers=headers)
    )
    if created is None:
        return
    request_id = created.json()["id"]
    if random.random() < 0.1:  # a client retrying after a lost answer
        replay = await timed(
            stats, "replay", 201, http.post("/v1/contact-requests", json=body, headers=headers)
        )
        if replay is not None and replay.json()["id"] != request_id:
            stats.errors["replay returned another id"] += 1
    world.pending.append((request_id, world.ally_subs[n], requester))


async def op_accept(http: httpx.AsyncClient, world: World, stats: Stats) -> None:
    request_id, ally, requester = world.pending.popleft()
    path = f"/v1/contact-requests/{request_id}/accept"
    if await timed(stats, "accept", 200, http.post(path, headers=world.headers(ally))):
        world.accepted.append((request_id, ally, requester))


async def op_message(http: httpx.AsyncClient, world: World, stats: Stats) -> None:
    # Taken out of the queue while the message is on its way, so a concurrent complete cannot
    # close this thread under it (that 409 would be the load generator's race, not the API's).
    entry = world.accepted.popleft()
    request_id, ally, requester = entry
    author = random.choice((ally, requester))
    path = f"/v1/contact-requests/{request_id}/messages"
    body = {"body": "a soak message in the thread"}
    try:
        await timed(
            stats, "message", 201, http.post(path, json=body, headers=world.headers(author))
        )
    finally:
        world.accepted.append(entry)


async def op_complete(http: httpx.AsyncClient, world: World, stats: Stats) -> None:
    request_id, ally, _ = world.accepted.popleft()
    path = f"/v1/contact-requests/{request_id}/complete"
    body = {"signposted": True, "wellbeing": 4}
    await timed(stats, "complete", 200, http.post(path, json=body, headers=world.headers(ally)))


async def op_read(op: str, http: httpx.AsyncClient, world: World, stats: Stats) -> None:
    if op == "ally_queue":
        ally = random.choice(world.ally_subs)
        call = http.get("/v1/contact-requests?status=pending", headers=world.headers(ally))
    elif op == "my_requests" and world.pending:
        requester = random.choice(world.pending)[2]
        call = http.get("/v1/me/contact-requests", headers=world.headers(requester))
    elif op == "suggestions":
        call = http.get(
            "/v1/allies/suggestions?topic=stress&language=en", headers=world.headers("reader")
        )
    else:
        op = "directory"
        call = http.get("/v1/allies?limit=20", headers=world.headers("reader"))
    await timed(stats, op, 200, call)


async def one_operation(http: httpx.AsyncClient, world: World, stats: Stats) -> None:
    op = random.choices(list(MIX), weights=list(MIX.values()))[0]
    if op in WRITES:
        # Keep the flow balanced: every create is later accepted and completed, so the open
        # requests stay far below the allies' capacity (a growing backlog would turn creates
        # into the 409s of allies at capacity, a property of the mix, not of the service).
        if len(world.accepted) > MAX_ACCEPTED:
            op = "complete"
        elif len(world.pending) > MAX_PENDING:
            op = "accept"
    if op == "accept" and world.pending:
        await op_accept(http, world, stats)
    elif op == "message" and world.accepted:
        await op_message(http, world, stats)
    elif op == "complete" and len(world.accepted) > 5:  # keep some threads open for messages
        await op_complete(http, world, stats)
    elif op in ("create", "accept", "message", "complete"):
        await op_create(http, world, stats)
    else:
        await op_read(op, http, world, stats)


async def sample(pid: int, stats: Stats, started: float, stop_at: float) -> None:
    """Every SAMPLE_SECONDS: the server's RSS and the counts so far, until the end."""
    while True:
        elapsed = time.monotonic() - started
        stats.rss_kb.append((elapsed, rss_kb(pid)))
        print(
            f"t={elapsed:5.0f}s rss={stats.rss_kb[-1][1] / 1024:6.1f} MiB"
            f" requests={stats.total} errors={sum(stats.errors.values())}",
            flush=True,
        )
        if time.monotonic() + SAMPLE_SECONDS > stop_at:
            return
        await asyncio.sleep(SAMPLE_SECONDS)


async def drive(base: str, pid: int, world: World, args: argparse.Namespace) -> Stats:
    """Open loop at ``args.rate`` per second for ``args.minutes``, then wait (bounded) for
    the requests still out."""
    stats = Stats()
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them, so a
    # request is never sent on a connection the server is closing at that moment.
    limits = httpx.Limits(max_connections=args.max_in_flight, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT, limits=limits) as http:
        started = time.monotonic()
        cpu_before = cpu_seconds(pid)
        stop_at = started + args.minutes * 60
        sampler = asyncio.create_task(sample(pid, stats, started, stop_at))
        in_flight: set[asyncio.Task[None]] = set()
        tick = 0
        while (due := started + tick / args.rate) < stop_at:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tick += 1
            if len(in_flight) >= args.max_in_flight:
                stats.skipped += 1  # the server fell behind: reported, and counted as an error
                continue
            task = asyncio.create_task(one_operation(http, world, stats))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.wait_for(asyncio.gather(*in_flight), timeout=CLIENT_TIMEOUT * 2)
        await sampler
        stats.rss_kb.append((time.monotonic() - started, rss_kb(pid)))
        stats.server_cpu_seconds = cpu_seconds(pid) - cpu_before
        stats.latencies["_elapsed"] = [time.monotonic() - started]
    return stats


# --- the report ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summary(stats: Stats, args: argparse.Namespace) -> dict[str, Any]:
    elapsed = stats.latencies.pop("_elapsed", [1.0])[0]
    every = [v for values in stats.latencies.values() for v in values]
    rss = [kb for _, kb in stats.rss_kb]
    errors = sum(stats.errors.values()) + stats.skipped
    return {
        "minutes": args.minutes,
        "target_rate": args.rate,
        "requests": len(every),
        "achieved_rate": round(len(every) / elapsed, 1),
        "errors": errors,
        "error_kinds": dict(stats.errors),
        "skipped_for_backlog": stats.skipped,
        "p50_ms": round(percentile(every, 0.50) * 1000, 1),
        "p99_ms": round(percentile(every, 0.99) * 1000, 1),
        # What a request costs the server, independent of how busy the machine was.
        "server_cpu_ms_per_request": round(stats.server_cpu_seconds * 1000 / max(1, len(every)), 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "per_operation": {
            op: {
                "n": len(values),
                "p50_ms": round(percentile(values, 0.50) * 1000, 1),
                "p99_ms": round(percentile(values, 0.99) * 1000, 1),
            }
            for op, values in sorted(stats.latencies.items())
        },
        "rss_mib": {
            "start": round(rss[0] / 1024, 1) if rss else None,
            "end": round(rss[-1] / 1024, 1) if rss else None,
            "peak": round(max(rss) / 1024, 1) if rss else None,
            "samples": [round(kb / 1024, 1) for kb in rss],
        },
        "database": "sqlite" if args.database_url.startswith("sqlite") else "postgresql",
    }


def print_summary(result: dict[str, Any]) -> None:
    rss = result["rss_mib"]
    print(
        f"\nsoak: {result['minutes']} min on {result['database']},"
        f" {result['requests']} requests at {result['achieved_rate']}/s"
        f" (target {result['target_rate']}/s), errors {result['errors']}"
        f"\nlatency p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms;"
        f" server CPU {result['server_cpu_ms_per_request']} ms per request;"
        f" machine load average {result['load_average_1m']}"
        f"\nserver RSS MiB: start {rss['start']}, end {rss['end']}, peak {rss['peak']}"
    )
    for op, figures in result["per_operation"].items():
        print(
            f"  {op:12} n={figures['n']:6} p50={figures['p50_ms']:7} ms p99={figures['p99_ms']:7} ms"
        )
    if result["errors"]:
        print(f"errors: {result['error_kinds']} skipped: {result['skipped_for_backlog']}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="allyapi-soak-") as tmp:
        data_dir = Path(tmp)
        url, name = await fresh_database(args.database_url, data_dir)
        process: asyncio.subprocess.Process | None = None
        try:
            await asyncio.to_thread(upgrade, url)
            settings = make_settings(url, data_dir)
            subs, ids = await seed_allies(settings)
            process, base = await start_server(settings, data_dir / "server.log")
            world = World(settings, subs, ids)
            stats = await drive(base, process.pid, world, args)
            return summary(stats, args)
        finally:
            if process is not None:
                await stop(process)
            await drop_database(args.database_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--max-in-flight", type=int, default=100)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ALLYAPI_SOAK_DATABASE_URL", DEFAULT_URL),
        help="a PostgreSQL server (a fresh database is created there), or 'sqlite'",
    )
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    if not 0 < args.minutes <= 120 or not 0 < args.rate <= 1000:
        parser.error("--minutes must be in (0, 120] and --rate in (0, 1000]")
    random.seed(args.seed)
    result = asyncio.run(run(args))
    print_summary(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
