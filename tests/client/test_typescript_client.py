"""A TypeScript client generated from the committed contract type-checks and runs a journey.

``@hey-api/openapi-ts`` (a third-party generator, pinned in ``typescript/package-lock.json``)
generates a fetch client from ``openapi/openapi.json``; ``typescript/journey.ts`` must compile
under ``strict`` (the 409's ``alternatives``, the anonymous rule as a union) and then run
against a live demo server, reading ``ETag``, ``alternatives`` and ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer, live_server
from tests.tools import require

HERE = Path(__file__).resolve().parent / "typescript"
CONTRACT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
PEOPLE = {
    "coordinator": ("carol", "employee,coordinator"),
    **{f"employee-{n}": (f"ts-employee-{n}", "employee") for n in range(1, 6)},
}


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - pinned tools and our own files
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _tools() -> Path:
    """``npm ci`` into typescript/node_modules, once per lock file."""
    npm = require("npm", "installs the TypeScript generator")
    require("node", "runs the generated TypeScript client")
    stamp = HERE / "node_modules" / ".allyapi-lock.sha256"
    wanted = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        _run(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", cwd=HERE)
        stamp.write_text(wanted)
    return HERE / "node_modules"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("typescript"), "--demo") as running:
        yield running


def _tokens(server: LiveServer) -> dict[str, str]:
    allyapi = [sys.executable, "-m", "allyapi", "token", "--org", "demo"]
    return {
        who: _run(
            *allyapi, "--sub", sub, "--roles", roles, cwd=server.data_dir, env=server.env
        ).strip()
        for who, (sub, roles) in PEOPLE.items()
    }


def test_generated_typescript_client_journey(server: LiveServer, tmp_path: Path) -> None:
    modules = _tools()
    (tmp_path / "node_modules").symlink_to(modules, target_is_directory=True)
    for name in ("journey.ts", "tsconfig.json"):
        shutil.copy(HERE / name, tmp_path / name)
    bin_dir = modules / ".bin"
    _run(
        str(bin_dir / "openapi-ts"),
        "-i",
        str(CONTRACT),
        "-o",
        "gen",
        "-c",
        "@hey-api/client-fetch",
        cwd=tmp_path,
    )
    _run(str(bin_dir / "tsc"), "-p", ".", cwd=tmp_path)
    env = {**os.environ, "BASE": server.base, "TOKENS": json.dumps(_tokens(server))}
    summary = json.loads(_run("node", "out/journey.js", cwd=tmp_path, env=env))
    assert summary["etag"]["stale_status"] == 412
    assert summary["alternatives"], "the 409 named alternatives"
    assert summary["retry_after"] > 0
    assert summary["available"]["tuesday"] > 0
    assert summary["available"]["sunday"] == 0
    # The cap let three through (newest first); the fourth was the 429.
    assert summary["exported_requests"] == ["Hello 2", "Hello 1", "Could we talk, without my name?"]
    assert summary["audit"] == [
        ["resource.update", ["hours"]],
        ["resource.create", ["category", "name", "url"]],
    ]
