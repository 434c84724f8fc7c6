"""Processes for the reliability tests: an ``allyapi serve`` server and a private PostgreSQL.

The server is started exactly as in production (``allyapi serve``: uvicorn with its graceful
shutdown timeout), on loopback and a free port. The private PostgreSQL cluster is this test
module's own (``initdb`` into a temporary directory, its own port), so stopping or restarting
it disturbs no other test or helper: the shared server on 5432 is never touched.

Everything is bounded: startup deadlines, ``pg_ctl -t``, and every process is stopped (then
killed) in a ``finally`` by its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.concurrency.conftest import Server, free_port

PG_BIN_ROOT = Path("/usr/lib/postgresql")
SERVER_STARTUP_SECONDS = 30.0
PG_CTL_SECONDS = 30
SHUTDOWN_SECONDS = 30.0
# Environment variables worth knowing in this module.
FULL = os.environ.get("ALLYAPI_RELIABILITY_FULL") == "1"


def counts(short: int, full: int) -> int:
    """The suite's usual number by default; ``ALLYAPI_RELIABILITY_FULL=1`` asks for a bigger one."""
    return full if FULL else short


async def start_server(env: dict[str, str], log: Path, cwd: Path) -> Server:
    """``allyapi serve`` (no migration: the test did it) on a free loopback port."""
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
            env=env,
            cwd=cwd,  # no stray .env is read
            stdout=sink,
            stderr=sink,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    await wait_healthy(server)
    return server


async def wait_healthy(server: Server) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVER_STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as client:
        while loop.time() < deadline and server.process.returncode is None:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    tail = server.log_bytes()[-3000:].decode(errors="replace")
    raise AssertionError(f"server {server.base_url} did not become healthy:\n{tail}")


async def stop_server(server: Server, sig: int = signal.SIGTERM) -> int:
    """Signal the server and wait (bounded) for it to exit; kill it past the bound."""
    if server.process.returncode is None:
        server.process.send_signal(sig)
        try:
            await asyncio.wait_for(server.process.wait(), timeout=SHUTDOWN_SECONDS)
        except TimeoutError:
            server.process.kill()
            await server.process.wait()
    code = server.process.returncode
    assert code is not None
    return code


def _pg_bin() -> Path:
    versions = sorted(PG_BIN_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise AssertionError(f"no PostgreSQL binaries under {PG_BIN_ROOT} (initdb, pg_ctl)")
    return versions[-1].parent


@dataclass
class PrivateCluster:
    """A throwaway PostgreSQL cluster: trust auth, loopback only, its own port and socket dir."""

    root: Path
    port: int
    bin: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(  # noqa: S603 - fixed binaries, our own arguments
            command, check=check, capture_output=True, timeout=PG_CTL_SECONDS + 30
        )

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            "pg_ctl",
            action,
            "-D",
            str(self.data),
            "-w",
            "-t",
            str(PG_CTL_SECONDS),
            "-l",
            str(self.root / "postgres.log"),
            "-o",
            options,
            *extra,
        )

    @classmethod
    def create(cls) -> PrivateCluster:
        root = Path(tempfile.mkdtemp(prefix="allyapi-pg-"))
        cluster = cls(root=root, port=free_port(), bin=_pg_bin())
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres", group="postgres")
        cluster._run(
            "initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"
        )
        cluster.start()
        return cluster

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("restart", "-m", mode)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
