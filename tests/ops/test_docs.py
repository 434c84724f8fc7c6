"""``/docs`` and ``/redoc`` work on an offline intranet: every asset comes from the API.

The browser test loads the page in headless Chromium on this machine, whose network reaches
no CDN, and finds the rendered operations list: a page that fetched its script from anywhere
else would stay blank (and the page's policy would refuse it anyway).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from allyapi.ops.docs import assets_dir
from tests.live import LiveServer, live_server
from tests.tools import require

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
)


async def test_pages_name_only_local_assets(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        assert "http://" not in response.text
        assert "https://" not in response.text
        assert "/docs/static/" in response.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        response = await client.get(f"/docs/static/{asset}")
        assert response.status_code == 200
        assert response.content == (assets_dir() / asset).read_bytes()


async def test_docs_routes_are_not_in_the_contract(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("docs")) as running:
        yield running


def _chromium(url: str, profile: Path, *extra: str) -> str:
    chromium = require("chromium", "renders /docs offline")
    result = subprocess.run(  # noqa: S603 - our own fixed command line
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return result.stdout.decode("utf-8", "replace")


def test_swagger_ui_renders_the_operations_offline(server: LiveServer, tmp_path: Path) -> None:
    dom = _chromium(f"{server.base}/docs", tmp_path / "profile", "--dump-dom")
    assert 'data-path="/v1/allies"' in dom
    assert 'data-path="/v1/contact-requests"' in dom
    assert dom.count('class="opblock ') + dom.count("opblock-summary-path") > 20
    shot = tmp_path / "docs.png"
    _chromium(
        f"{server.base}/docs",
        tmp_path / "profile2",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kilobytes


def test_redoc_renders_the_operations_offline(server: LiveServer, tmp_path: Path) -> None:
    dom = _chromium(f"{server.base}/redoc", tmp_path / "profile", "--dump-dom")
    assert "operation/list_allies" in dom
    assert "operation/create_contact_request" in dom
