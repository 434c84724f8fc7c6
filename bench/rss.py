"""Peak RSS of one worker after a million requests (the target: ≤ 150 MB).

    .venv/bin/python bench/rss.py                       # 1,000,000 requests (~30 min)
    .venv/bin/python bench/rss.py --requests 50000      # a quick look

Starts ``allyapi`` as bench/run.py does (same environment, one worker, pinned), then loads it
with wrk in alternating chunks, directory reads (20 s) and creates (5 s), until ``--requests``
have been answered, printing the process's RSS (VmRSS) and peak (VmHWM) after every chunk.
Creates add rows to the bench database (re-seed for a clean slate).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed
import workloads
from run import DIRECTORY_PATH, ROOT, fixtures
from servers import Server, bench_env, free_port, pinned, run_wrk


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def main_async(args: argparse.Namespace) -> None:
    settings = seed.bench_settings()
    allies, _ = await fixtures(settings)
    env = bench_env(seed.bench_url(), settings)
    server = Server("ours", free_port(), ["allyapi.app:create_app", "--factory"], env, ROOT)
    scratch = Path(tempfile.mkdtemp(prefix="allyapi-rss-"))
    loads = [
        (workloads.directory(settings, "directory", seed.BIG, DIRECTORY_PATH), 20.0),
        (workloads.create(settings, seed.BIG, allies, workloads.REQUESTERS), 5.0),
    ]
    scripts = [(workloads.lua_script(load, scratch), seconds) for load, seconds in loads]
    url = f"http://127.0.0.1:{server.port}"
    await server.start()
    started = time.monotonic()
    served = errors = 0
    try:
        pinned(core=1)
        rss, peak = memory_mb(server.pid)
        print(f"{'requests':>10} {'non-2xx':>8} {'minutes':>8} {'RSS MB':>8} {'peak MB':>8}")
        print(f"{served:>10,} {errors:>8} {0:>8.1f} {rss:>8.1f} {peak:>8.1f}", flush=True)
        while served < args.requests:
            for script, seconds in scripts:
                run = await asyncio.to_thread(run_wrk, url, script, seconds, args.connections)
                served, errors = served + run.requests, errors + run.errors
            rss, peak = memory_mb(server.pid)
            minutes = (time.monotonic() - started) / 60
            print(f"{served:>10,} {errors:>8} {minutes:>8.1f} {rss:>8.1f} {peak:>8.1f}", flush=True)
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=16)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
