"""Where one endpoint's server CPU goes: py-spy on our server under wrk, summed by package.

    pip install --target /tmp/pyspy py-spy
    .venv/bin/python bench/spy.py directory        # or: create
    .venv/bin/python bench/spy.py create --seconds 15 --top 40

Starts ``allyapi`` exactly as bench/run.py does (same environment, pinned to the server core),
loads it with wrk for ``--seconds`` while py-spy samples it, then prints the share of samples
per package (inclusive: a frame anywhere on the stack) and the functions with the most
inclusive samples in our own code and in the libraries. The raw py-spy output is kept for a
flame graph (``--raw``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed
import workloads
from run import DIRECTORY_PATH, ROOT, fixtures
from servers import Server, bench_env, free_port, pinned, run_wrk

# Installed as bench/README.md says (pip install --target <tmp>/pyspy py-spy), or on PATH.
PY_SPY = os.environ.get(
    "PY_SPY", shutil.which("py-spy") or str(Path(tempfile.gettempdir()) / "pyspy/bin/py-spy")
)
PACKAGES = (
    "allyapi", "sqlalchemy", "asyncpg", "fastapi", "starlette", "pydantic", "jose", "uvicorn",
    "cryptography", "json", "asyncio", "uvloop", "httptools",
)  # fmt: skip


def package_of(frame: str) -> str | None:
    # py-spy raw frames look like "function (path/to/module.py:123)".
    path = frame.rpartition("(")[2]
    for name in PACKAGES:
        if f"/{name}/" in path or path.startswith(f"{name}/"):
            return name
    return None


def summarise(raw: Path, top: int) -> None:
    per_package: Counter[str] = Counter()
    per_function: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for name in {package_of(frame) for frame in frames} - {None}:
            per_package[str(name)] += count
        for frame in set(frames):
            per_function[frame] += count
        own[frames[-1]] += count
    print(f"\n{total} samples; share of samples with the package anywhere on the stack:")
    for name, count in per_package.most_common():
        print(f"  {name:14} {count / total:6.1%}")
    print(f"\ntop {top} functions by inclusive samples:")
    for frame, count in per_function.most_common(top):
        print(f"  {count / total:6.1%}  {frame[:150]}")
    print(f"\ntop {top} functions by own samples (the frame at the top of the stack):")
    for frame, count in own.most_common(top):
        print(f"  {count / total:6.1%}  {frame[:150]}")


async def main_async(args: argparse.Namespace) -> None:
    settings = seed.bench_settings()
    allies, _ = await fixtures(settings)
    env = bench_env(seed.bench_url(), settings)
    server = Server("ours", free_port(), ["allyapi.app:create_app", "--factory"], env, ROOT)
    if args.endpoint == "directory":
        load = workloads.directory(settings, "directory", seed.BIG, DIRECTORY_PATH)
    else:
        load = workloads.create(settings, seed.BIG, allies, workloads.REQUESTERS)
    scratch = Path(tempfile.mkdtemp(prefix="allyapi-profile-"))
    script = workloads.lua_script(load, scratch)
    url = f"http://127.0.0.1:{server.port}"
    await server.start()
    try:
        pinned(core=1)
        await asyncio.to_thread(run_wrk, url, script, 3, args.connections)  # warm-up
        spy = subprocess.Popen(  # noqa: S603, ASYNC220 (our own fixed argv)
            [PY_SPY, "record", "-p", str(server.pid), "-d", str(int(args.seconds)), "-r", "200",
             "-f", "raw", "-o", str(args.raw), "--nonblocking"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        run = await asyncio.to_thread(run_wrk, url, script, args.seconds, args.connections)
        requests, seconds, p50, p99, errors = (
            run.requests,
            run.seconds,
            run.p50,
            run.p99,
            run.errors,
        )
        await asyncio.to_thread(spy.wait)
    finally:
        await server.stop()
    print(f"{args.endpoint}: {requests / seconds:,.0f} req/s, p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, non-2xx {errors}")  # fmt: skip
    summarise(args.raw, args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("endpoint", choices=["directory", "create"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--raw", type=Path, default=Path(tempfile.gettempdir()) / "allyapi-profile.txt"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
