"""Two real ``uvicorn`` server processes on the PostgreSQL test database.

Several processes behind a load balancer must behave as one (docs/operations.md): every
invariant that can race is held by the database, so the tests fire concurrent requests at two
processes.
Only PostgreSQL: two processes writing one SQLite file is not a deployment allyapi offers
(the embedded default is a single process), so on SQLite these tests are skipped with that
reason and run on the PostgreSQL leg, where CI forbids skips.

Bounded: loopback only, ports picked free, a startup deadline, and the processes are
terminated (then killed) in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from allyapi.core.settings import Settings
from tests.factories import process_env

STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
POSTGRES_ONLY = (
    "two server processes need PostgreSQL (SQLite is the single-process embedded default): "
    "set ALLYAPI_TEST_POSTGRES_URL"
)


@dataclass
class Server:
    base_url: str
    process: asyncio.subprocess.Process
    log: Path  # the process's stdout and stderr

    def log_bytes(self) -> bytes:
        return self.log.read_bytes()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Everything that can log does, at DEBUG: our loggers, uvicorn (with its access log) and
# SQLAlchemy's engine, which then prints every statement, its parameters and the rows read.
# test_server_logs.py proves that even this output carries no requester data.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "DEBUG", "handlers": ["stderr"]},
    "loggers": {"sqlalchemy.engine": {"level": "DEBUG"}, "sqlalchemy.pool": {"level": "DEBUG"}},
}


async def _start(settings: Settings, log: Path) -> Server:
    port = free_port()
    env = process_env(
        settings,
        ALLYAPI_LOG_LEVEL="DEBUG",
        ALLYAPI_RATE_LIMIT_WRITES_PER_MINUTE="100000",
        ALLYAPI_RATE_LIMIT_READS_PER_MINUTE="100000",
        ALLYAPI_DB_POOL_SIZE="10",
    )
    log_config = log.with_suffix(".json")
    log_config.write_text(json.dumps(LOG_CONFIG))
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "allyapi.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "debug",
            "--log-config",
            str(log_config),
            env=env,
            cwd=settings.data_dir,  # no stray .env is read
            stdout=sink,
            stderr=sink,
        )
    return Server(f"http://127.0.0.1:{port}", process, log)


async def _wait_healthy(server: Server) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as client:
        while asyncio.get_running_loop().time() < deadline:
            if server.process.returncode is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    tail = server.log_bytes()[-3000:].decode(errors="replace")
    pytest.fail(f"server {server.base_url} did not become healthy:\n{tail}")


async def _stop(server: Server) -> None:
    if server.process.returncode is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(server.process.wait(), timeout=STOP_SECONDS)
    except TimeoutError:
        server.process.kill()
        await server.process.wait()


@pytest.fixture(scope="session")
async def two_servers(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[Server]]:
    """Started once per test session (the servers are stateless; tables are emptied per test)."""
    if not settings.effective_database_url.startswith("postgresql"):
        pytest.skip(POSTGRES_ONLY)
    logs = tmp_path_factory.mktemp("servers")
    servers: list[Server] = []
    try:
        for n in range(2):
            servers.append(await _start(settings, logs / f"server-{n}.log"))
        await asyncio.gather(*(_wait_healthy(server) for server in servers))
        yield servers
    finally:
        await asyncio.gather(*(_stop(server) for server in servers))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One client for both servers (absolute URLs); generous limits so requests really overlap."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        yield client
