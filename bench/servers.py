"""Server processes under test, the wrk runner and CPU pinning for bench/run.py."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from allyapi.core.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CORE, LOAD_CORE = 0, 1


def free_port() -> int:
    """A port nobody listens on now (parallel runs must not meet on fixed ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def can_pin() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None


def pinned(core: int) -> None:
    """Pin this process (the Python loader runs in it) to ``core`` when there are two."""
    if can_pin():
        os.sched_setaffinity(0, {core})


def bench_env(database_url: str, settings: Settings) -> dict[str, str]:
    """The same environment for both servers: same database, keys, pool size and limits."""
    env = dict(os.environ)
    env.update(
        ALLYAPI_DATABASE_URL=database_url,
        ALLYAPI_ENV="development",
        ALLYAPI_DATA_DIR=str(settings.data_dir.resolve()),
        ALLYAPI_JWT_SECRET=settings.jwt_secret or "",
        ALLYAPI_PSEUDONYM_KEY=settings.pseudonym_key or "",
        ALLYAPI_DATA_KEYS=settings.data_keys or "",
        ALLYAPI_JOBS_INTERVAL_SECONDS="0",
        ALLYAPI_WEBHOOK_INTERVAL_SECONDS="0",
        ALLYAPI_MAX_OPEN_REQUESTS="1000000",
        ALLYAPI_RATE_LIMIT_WRITES_PER_MINUTE="100000",
        ALLYAPI_RATE_LIMIT_READS_PER_MINUTE="100000",
        ALLYAPI_LOG_LEVEL="WARNING",
    )
    return env


class Server:
    """One uvicorn process, one worker, no access log, pinned to the server core."""

    def __init__(
        self, name: str, port: int, target: list[str], env: dict[str, str], cwd: Path
    ) -> None:
        self.name, self.port, self.env, self.cwd = name, port, env, cwd
        command = [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", "1", "--no-access-log"]
        command += ["--log-level", "warning"]
        if can_pin():
            command = ["taskset", "-c", str(SERVER_CORE), *command]
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.served = 0
        self.errors = 0

    async def start(self, wait_seconds: float = 60.0) -> None:
        # Our own argv (sys.executable, uvicorn, fixed options); Popen returns at once.
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd)  # noqa: S603, ASYNC220
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                await asyncio.to_thread(self._probe)
                return
            except OSError:
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within {wait_seconds:.0f} s")

    def _probe(self) -> None:
        # Any HTTP answer (a 401 or 404 included) means the server is up.
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/healthz")
        try:
            urllib.request.urlopen(request, timeout=1).close()  # noqa: S310 (loopback)
        except urllib.error.HTTPError:
            return

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (fields 14 and 15 of /proc/<pid>/stat)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, 20)
        except subprocess.TimeoutExpired:
            self.process.kill()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def _max_ms(text: str) -> float:
    """wrk's "Latency avg stdev max" line: the slowest answer of the run."""
    match = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    p50: float
    p90: float
    p99: float
    max: float
    errors: int


def run_wrk(url: str, script: Path, seconds: float, connections: int) -> WrkRun:
    """One wrk run on the load core: latencies in ms, ``errors`` the non-2xx answers."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(seconds, 1):g}s", "--latency"]
    command += ["-s", str(script), url]
    if can_pin():
        command = ["taskset", "-c", str(LOAD_CORE), *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkRun(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * unit,
        p50=_latency_ms(out, "50"),
        p90=_latency_ms(out, "90"),
        p99=_latency_ms(out, "99"),
        max=_max_ms(out),
        errors=int(errors.group(1)) if errors else 0,
    )
