"""The soak's smoke mode: bench/soak.py for half a minute, zero errors.

The full soak (10 minutes at 50 req/s, figures in bench/RESULTS.md) is run by hand; this runs
the same script, the same mix and the same server start at a rate a shared CI machine holds,
so a change that breaks a flow of the soak (or its own code) fails here first. PostgreSQL leg:
the soak creates and drops its own database on that server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ENV

pytestmark = pytest.mark.postgres_only

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
MINUTES, RATE = 0.5, 10


def test_half_a_minute_of_mixed_traffic_has_no_errors(tmp_path: Path) -> None:
    result_file = tmp_path / "soak.json"
    completed = subprocess.run(  # noqa: S603 - our own script with fixed arguments
        [
            sys.executable,
            str(SOAK),
            "--minutes",
            str(MINUTES),
            "--rate",
            str(RATE),
            "--database-url",
            os.environ[PG_ENV],
            "--json",
            str(result_file),
        ],
        capture_output=True,
        timeout=120,  # 30 s of traffic, setup and a bounded drain; never a hang
        check=False,
    )
    output = completed.stdout.decode(errors="replace") + completed.stderr.decode(errors="replace")
    assert completed.returncode == 0, output[-3000:]
    result = json.loads(result_file.read_text())
    assert result["errors"] == 0, result["error_kinds"]
    assert result["requests"] >= 0.8 * MINUTES * 60 * RATE, output[-2000:]
    assert {"create", "accept", "message", "complete", "directory"} <= set(result["per_operation"])
    assert result["rss_mib"]["peak"] > 0
