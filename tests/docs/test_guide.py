"""docs/integration-guide.md never rots: its marked examples run against a live server.

A block preceded by ``<!-- run -->`` must exit 0; ``<!-- run: json -->`` must also print one
JSON document (``status=NNN`` in the marker: a problem document with that status);
``<!-- run: setup -->`` runs first and its exported variables feed every other block;
``<!-- run: python -->`` is the webhook verification example, checked against our signer.
The server is ``allyapi serve --demo`` on a free loopback port with a scratch SQLite data
dir, so the guide's examples see exactly what a reader's first run sees.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from allyapi.webhooks.signing import headers as signed_headers

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "integration-guide.md"
BLOCK = re.compile(
    r"<!-- run(?::\s*(?P<marker>[^>]*?))?\s*-->\s*\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)
STARTUP_SECONDS = 60
# Generous: a loaded CI machine starts the CLI slowly; a normal run takes a few seconds in all.
BLOCK_SECONDS = 60


@dataclass(frozen=True)
class Example:
    index: int
    marker: str
    lang: str
    code: str

    @property
    def id(self) -> str:
        first = self.code.strip().splitlines()[0]
        return f"{self.index}:{first[:40]}"


def examples() -> list[Example]:
    found = [
        Example(i, (m["marker"] or "").strip(), m["lang"], m["code"])
        for i, m in enumerate(BLOCK.finditer(GUIDE.read_text(encoding="utf-8")))
    ]
    assert found, "no runnable examples in the guide"
    return found


SETUP = [e for e in examples() if e.marker == "setup"]
SHELL = [e for e in examples() if e.lang == "bash" and e.marker != "setup"]
PYTHON = [e for e in examples() if e.lang == "python"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _base_env(data_dir: Path) -> dict[str, str]:
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


@pytest.fixture(scope="module")
def live_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("guide")
    port = _free_port()
    env = _base_env(data_dir)
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "allyapi", "serve", "--demo", "--port", str(port)],
        cwd=data_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, base)
        assert len(SETUP) == 1, "the guide needs exactly one setup block"
        yield _exports(SETUP[0].code, {**env, "BASE": base}, data_dir)
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


def _bash(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the guide's own examples
        ["bash", "-c", "set -euo pipefail\n" + code],  # noqa: S607
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=BLOCK_SECONDS,
        check=False,
    )


def _exports(code: str, env: dict[str, str], cwd: Path) -> dict[str, str]:
    done = _bash(code + "\nenv -0", env, cwd)
    assert done.returncode == 0, done.stderr
    pairs = (item.partition("=") for item in done.stdout.split("\0") if "=" in item)
    exported = {name: value for name, _, value in pairs}
    assert exported["TOKEN"].count(".") == 2
    return exported


@pytest.mark.parametrize("example", SHELL, ids=[e.id for e in SHELL])
def test_shell_example_runs(example: Example, live_env: dict[str, str], tmp_path: Path) -> None:
    done = _bash(example.code, live_env, tmp_path)
    assert done.returncode == 0, (
        f"{example.code}\n--- stderr:\n{done.stderr}\n--- stdout:\n{done.stdout}"
    )
    if example.marker.startswith("json"):
        document: Any = json.loads(done.stdout)
        expected = re.search(r"status=(\d{3})", example.marker)
        if expected:
            assert document["status"] == int(expected.group(1)), document
        else:
            assert isinstance(document, dict)
            assert "status" not in document or document["status"] in ("ok", "ready"), document


@pytest.mark.parametrize("example", PYTHON, ids=[e.id for e in PYTHON])
def test_webhook_verification_example_accepts_our_signature(example: Example) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(example.code, str(GUIDE), "exec"), namespace)  # noqa: S102 - our own guide
    verify = namespace["verify_webhook"]
    secret = "whsec_" + "c2VjcmV0LWtleS1ieXRlcy0zMi1sb25nLXh4eHh4eHg="
    body = '{"data":{"ally_id":"a"},"id":"e","type":"ally.listed"}'
    now = int(time.time())
    headers = signed_headers(secret, "msg_1", now, body)
    assert verify(secret, headers, body.encode())
    assert not verify(secret, headers, body.replace('"a"', '"b"').encode())
    assert not verify(
        "whsec_" + "b3RoZXIta2V5LWJ5dGVzLTMyLWxvbmcteHh4eHh4eHg=", headers, body.encode()
    )
    stale = signed_headers(secret, "msg_1", now - 3600, body)
    assert not verify(secret, stale, body.encode())
