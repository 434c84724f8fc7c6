"""A real ``allyapi serve`` on a free loopback port, for tests that need a live server
(a browser, shell examples, generated clients): SQLite in a scratch data dir, background jobs
off, the same CLI a reader runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 60


@dataclass(frozen=True)
class LiveServer:
    base: str
    env: dict[str, str]
    data_dir: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def server_env(data_dir: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "HOME": str(data_dir),
        "ALLYAPI_ENV": "development",
        "ALLYAPI_DATA_DIR": str(data_dir),
        "ALLYAPI_JOBS_INTERVAL_SECONDS": "0",
        "ALLYAPI_WEBHOOK_INTERVAL_SECONDS": "0",
    }


@contextmanager
def live_server(data_dir: Path, *serve_args: str) -> Iterator[LiveServer]:
    port = free_port()
    env = server_env(data_dir)
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "allyapi", "serve", *serve_args, "--port", str(port)],
        cwd=data_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, base)
        yield LiveServer(base=base, env=env, data_dir=data_dir)
    finally:
        server.terminate()
        server.wait(timeout=15)


def _wait_ready(server: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"allyapi serve exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("allyapi serve did not become ready")
