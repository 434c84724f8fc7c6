"""Interactive docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``) served entirely by the API.

Intranets are often offline and a CDN is a third party that would learn who reads the docs,
so the pages load their scripts and styles from ``/docs/static/``: the assets shipped by the
pinned ``fastapi-offline`` package. Their Content-Security-Policy allows this origin only
(the one inline script by its hash), so a page that tried to reach a CDN would fail in a test
rather than silently in a browser.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/docs/static"
OPENAPI_URL = "/openapi.json"
TITLE = "allyapi"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _csp(page: bytes) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; "
        "style-src 'self' 'unsafe-inline'; "  # both UIs set inline styles at run time
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self' blob:; frame-ancestors 'none'"
    )


def _fixed_page(response: HTMLResponse) -> tuple[bytes, dict[str, str]]:
    body = bytes(response.body)
    return body, {"Content-Security-Policy": _csp(body)}


def install_docs(app: FastAPI) -> None:
    """Adds ``/docs``, ``/redoc`` and their assets (none of them in the contract)."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=assets_dir()), name="docs-static")
    swagger, swagger_headers = _fixed_page(
        get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{TITLE} — Swagger UI",
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/favicon.png",
        )
    )
    redoc, redoc_headers = _fixed_page(
        get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{TITLE} — ReDoc",
            redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger, headers=swagger_headers)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return HTMLResponse(redoc, headers=redoc_headers)
