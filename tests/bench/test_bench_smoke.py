"""The benchmark pipeline keeps working (bench/README.md): seed, both servers, loads, the tables.

``bench/run.py --smoke`` seeds tiny data into its own database, starts our app and the
baseline under uvicorn, loads each briefly (wrk when installed, else bench/loader.py, so CI
needs no apt) and prints the tables. No timing is asserted: only that everything answered 2xx
and every table was printed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres_only

ROOT = Path(__file__).resolve().parents[2]
TABLES = (
    "Maximum rate (closed loop)",
    "Half the baseline's maximum rate",
    "Directory scaling (ours)",
    "Peak RSS (VmHWM)",
)


def _drop(server_url: str, name: str) -> None:
    admin = make_url(server_url).set(drivername="postgresql")

    async def run() -> None:
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(run())


def test_smoke_run_prints_every_table(tmp_path: Path) -> None:
    server_url = os.environ["ALLYAPI_TEST_POSTGRES_URL"]
    name = f"allyapi_bench_{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "ALLYAPI_BENCH_PERF_URL": make_url(server_url)
        .set(database=name)
        .render_as_string(hide_password=False),
        "ALLYAPI_DATA_DIR": str(tmp_path / "data"),
    }
    try:
        done = subprocess.run(  # noqa: S603 (our own interpreter and script)
            [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        _drop(server_url, name)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for title in TABLES:
        assert title in done.stdout
    for endpoint in ("directory", "create", "dir p1000 l=10", "dir 10 allies"):
        assert f"\n{endpoint} " in done.stdout
    assert "non-2xx answers: 0" in done.stdout
