"""Ours vs the bare-asyncpg baseline on the same PostgreSQL, loaded in turn (A B A B ...).

    .venv/bin/python bench/seed.py                # once: 10,000 allies, 1,000,000 requests
    .venv/bin/python bench/run.py                 # 3 rounds x 10 s per endpoint and server
    .venv/bin/python bench/run.py --smoke         # tiny data and sub-second loads (CI)

Both servers run under uvicorn with the same settings (1 worker, no access log, uvloop +
httptools as uvicorn picks them), pinned to core 0 with ``taskset``; the load generator runs
on core 1 (wrk when installed, else loader.py). Printed per endpoint: req/s and the ratio
ours/baseline, p50/p90/p99/max latency, server CPU µs per request (utime+stime from /proc/<pid>/stat
over the run / requests), non-2xx answers; then the p99 at half the baseline's maximum rate
(open loop, loader.py), the directory at page 1 vs page 1,000 and with 10 vs 10,000 allies,
and each server's peak RSS (VmHWM).

Both servers get ALLYAPI_MAX_OPEN_REQUESTS=1000000 and ALLYAPI_RATE_LIMIT_WRITES_PER_MINUTE=
100000 (the rules still run, as conditional UPDATEs and upserts, they just never refuse), and
background jobs and the webhook deliverer off: both do request work only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed
import workloads
from loader import run_load
from servers import LOAD_CORE, SERVER_CORE, Server, bench_env, free_port, pinned, run_wrk

from allyapi.core.http.pagination import PageRequest, binding_of
from allyapi.core.settings import Settings

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DIRECTORY_PATH = "/v1/allies?language=en&limit=20"


@dataclass
class Sample:
    endpoint: str
    server: str
    requests: int
    seconds: float
    p50: float
    p90: float
    p99: float
    max: float
    errors: int
    cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Options:
    seconds: float
    rounds: int
    connections: int
    use_wrk: bool
    scratch: Path


async def measure(
    server: Server, load: workloads.Workload, opts: Options, rate: float | None = None
) -> Sample:
    cpu_before = server.cpu_seconds()
    if opts.use_wrk and rate is None:
        script = workloads.lua_script(load, opts.scratch)
        run = await asyncio.to_thread(
            run_wrk, f"http://{HOST}:{server.port}", script, opts.seconds, opts.connections
        )
        requests, seconds, errors = run.requests, run.seconds, run.errors
        p50, p90, p99, slowest = run.p50, run.p90, run.p99, run.max
    else:
        result = await run_load(
            HOST, server.port, workloads.request_maker(load, os.urandom(8).hex()),
            seconds=opts.seconds, connections=64 if rate else opts.connections, rate=rate,
        )  # fmt: skip
        requests, seconds, errors = result.requests, result.seconds, result.errors
        p50, p90, p99 = result.percentile(50), result.percentile(90), result.percentile(99)
        slowest = max(result.latencies_ms, default=float("nan"))
    cpu = server.cpu_seconds() - cpu_before
    server.served += requests
    server.errors += errors
    return Sample(load.name, server.name, requests, seconds, p50, p90, p99, slowest, errors, cpu)


def combine(samples: Sequence[Sample]) -> Sample:
    first = samples[0]
    return Sample(
        first.endpoint, first.server, sum(s.requests for s in samples),
        sum(s.seconds for s in samples), statistics.median(s.p50 for s in samples),
        statistics.median(s.p90 for s in samples), statistics.median(s.p99 for s in samples),
        max(s.max for s in samples), sum(s.errors for s in samples),
        sum(s.cpu_seconds for s in samples),
    )  # fmt: skip


def cpu_us(sample: Sample) -> str:
    return f"{sample.cpu_seconds / sample.requests * 1e6:,.0f}" if sample.requests else "-"


def table(title: str, rows: Sequence[tuple[Sample, Sample | None]]) -> None:
    print(f"\n{title}")
    head = (
        "endpoint        server     req/s   ours/base   p50 ms   p90 ms   p99 ms   max ms"
        "   CPU µs/req   non-2xx"
    )
    print(head)
    print("-" * len(head))
    for sample, base in rows:
        ratio = f"{sample.rps / base.rps:.2f}x" if base and base.rps else ""
        print(
            f"{sample.endpoint:<15} {sample.server:<8} {sample.rps:>8,.0f} {ratio:>10} "
            f"{sample.p50:>8.2f} {sample.p90:>8.2f} {sample.p99:>8.2f} {sample.max:>8.1f} "
            f"{cpu_us(sample):>12} {sample.errors:>9}"
        )
    sys.stdout.flush()


async def fixtures(settings: Settings) -> tuple[list[str], str]:
    """The big org's ally ids and the cursor of page 1,000 at limit 10 (or the last page)."""
    conn = await asyncpg.connect(seed.dsn(seed.bench_url()))
    try:
        rows = await conn.fetch(
            "SELECT id, display_name FROM allies WHERE org_id = $1 ORDER BY display_name, id",
            seed.BIG,
        )
    finally:
        await conn.close()
    page = min(1000, len(rows) // 10)
    last = rows[(page - 1) * 10 - 1]
    # Signed for that list (GET /v1/allies, no filters) of that org, as the API would make it.
    position = PageRequest(10, None, settings.cursor_key, binding_of(seed.BIG, "/v1/allies", []))
    return [str(row["id"]) for row in rows], position.cursor_at(last["display_name"], last["id"])


async def ab_rounds(
    servers: Sequence[Server], loads: Sequence[workloads.Workload], opts: Options
) -> dict[tuple[str, str], Sample]:
    warm = Options(min(opts.seconds, 2), 1, opts.connections, opts.use_wrk, opts.scratch)
    for load in loads:  # warm-up: connection pools, statement caches (not in smoke runs)
        for server in servers if opts.seconds >= 1 else ():
            await measure(server, load, warm)
    collected: dict[tuple[str, str], list[Sample]] = {}
    for round_no in range(opts.rounds):
        for load in loads:
            for server in servers:
                sample = await measure(server, load, opts)
                collected.setdefault((load.name, server.name), []).append(sample)
                print(f"  round {round_no + 1} {load.name:<10} {server.name:<8} "
                      f"{sample.rps:>8,.0f} req/s")  # fmt: skip
    return {key: combine(samples) for key, samples in collected.items()}


async def half_rate(
    servers: Sequence[Server], loads: Sequence[workloads.Workload], opts: Options,
    best: dict[tuple[str, str], Sample],
) -> None:  # fmt: skip
    rows: list[tuple[Sample, Sample | None]] = []
    for load in loads:
        rate = best[(load.name, "baseline")].rps / 2
        ours, base = [await measure(server, load, opts, rate=rate) for server in servers]
        rows += [(ours, base), (base, None)]
        print(f"  half rate for {load.name}: {rate:,.0f} req/s offered")
    table("Half the baseline's maximum rate (open loop, loader.py; latency from due time)", rows)


async def scaling(settings: Settings, ours: Server, deep_cursor: str, opts: Options) -> None:
    big, small = seed.BIG, seed.SMALL
    loads = [
        workloads.directory(settings, "dir p1 l=10", big, "/v1/allies?limit=10"),
        workloads.directory(
            settings, "dir p1000 l=10", big, f"/v1/allies?limit=10&cursor={deep_cursor}"
        ),
        # limit=5: both orgs fill the page (perf-small has 6 allies speaking en), so the two
        # answers are the same size and only the organisation's size differs.
        workloads.directory(settings, "dir 10 allies", small, "/v1/allies?language=en&limit=5"),
        workloads.directory(settings, "dir 10k allies", big, "/v1/allies?language=en&limit=5"),
    ]
    table("Directory scaling (ours)", [(await measure(ours, load, opts), None) for load in loads])


async def main_async(args: argparse.Namespace, opts: Options) -> int:
    settings = seed.bench_settings()
    allies, deep_cursor = await fixtures(settings)
    env = bench_env(seed.bench_url(), settings)
    ours = Server("ours", free_port(), ["allyapi.app:create_app", "--factory"], env, ROOT)
    base = Server("baseline", free_port(), ["baseline:app", "--app-dir", str(BENCH)], env, ROOT)
    requesters = 50 if args.smoke else workloads.REQUESTERS
    directory = workloads.directory(settings, "directory", seed.BIG, DIRECTORY_PATH)
    create = workloads.create(settings, seed.BIG, allies, requesters)
    try:
        await asyncio.gather(ours.start(), base.start())
        pinned(core=LOAD_CORE)
        print(f"load generator: {'wrk' if opts.use_wrk else 'loader.py'}, {opts.connections} "
              f"connections, {opts.rounds} rounds x {opts.seconds:g} s; servers on core "
              f"{SERVER_CORE}, load on core {LOAD_CORE}")  # fmt: skip
        best = await ab_rounds([ours, base], [directory, create], opts)
        names = ("directory", "create")
        rows: list[tuple[Sample, Sample | None]] = [
            (best[(name, "ours")], best[(name, "baseline")]) for name in names
        ]
        rows += [(best[(name, "baseline")], None) for name in names]
        table("Maximum rate (closed loop)", rows)
        if not args.max_only:
            await half_rate([ours, base], [directory, create], opts, best)
            await scaling(settings, ours, deep_cursor, opts)
        peaks = [
            f"{s.name} {s.peak_rss_mb():.0f} MB after {s.served:,} requests" for s in (ours, base)
        ]
        print("\nPeak RSS (VmHWM): " + ", ".join(peaks))
        errors = ours.errors + base.errors
        print(f"non-2xx answers: {errors}")
    finally:
        await asyncio.gather(ours.stop(), base.stop())
    # A smoke run exists to prove the pipeline works: anything but 2xx fails it.
    return 1 if args.smoke and errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per load, per server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--smoke", action="store_true", help="seed tiny data; sub-second loads")
    parser.add_argument(
        "--max-only", action="store_true", help="only the maximum rates (quick A/B while tuning)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        seed.main(["--smoke"])
        args.seconds, args.rounds, args.connections = 0.3, 1, 4
    use_wrk = args.loader == "wrk" or (args.loader == "auto" and shutil.which("wrk") is not None)
    scratch = Path(tempfile.mkdtemp(prefix="allyapi-bench-"))
    try:
        opts = Options(args.seconds, args.rounds, args.connections, use_wrk, scratch)
        return asyncio.run(main_async(args, opts))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
