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
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from allyapi.webhooks.signing import headers as signed_headers
from tests.live import live_server

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "integration-guide.md"
BLOCK = re.compile(
    r"<!-- run(?::\s*(?P<marker>[^>]*?))?\s*-->\s*\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)
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


@pytest.fixture(scope="module")
def live_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The setup block runs as a reader runs it after the README's quick start: from a checkout
    holding ``.venv``, with nothing of that venv on ``PATH`` (a bare ``allyapi`` fails)."""
    with live_server(tmp_path_factory.mktemp("guide"), "--demo") as server:
        assert len(SETUP) == 1, "the guide needs exactly one setup block"
        checkout = tmp_path_factory.mktemp("checkout")
        venv_bin = Path(sys.executable).parent
        (checkout / ".venv").symlink_to(venv_bin.parent, target_is_directory=True)
        path = os.pathsep.join(
            entry
            for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry != str(venv_bin)
        )
        env = {**server.env, "BASE": server.base, "PATH": path}
        yield _exports(SETUP[0].code, env, checkout)


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
