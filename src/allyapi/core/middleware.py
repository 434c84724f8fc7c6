"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request on hot paths)."""

from __future__ import annotations

import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allyapi.core.errors import PROBLEM_BASE, PROBLEM_JSON

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]
# The Swagger UI page loads its own script and styles; it gets a looser policy.
DOCS_PATHS = ("/docs", "/redoc")
MAX_HEADER_BYTES = 16 * 1024


def _problem(status: int, slug: str, title: str) -> bytes:
    return json.dumps({"type": PROBLEM_BASE + slug, "title": title, "status": status}).encode()


async def _send_problem(send: Send, status: int, slug: str, title: str) -> None:
    body = _problem(status, slug, title)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(DOCS_PATHS)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name for name, _ in message.get("headers", [])}
                extra = [
                    (name, value)
                    for name, value in SECURITY_HEADERS
                    if name not in present and not (is_docs and name == b"content-security-policy")
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette renders unhandled errors in ServerErrorMiddleware, outside every user
            # middleware, so that 500 would leave without these headers. Answer it here (the
            # same bare problem), then re-raise: the outer handler logs it and sees that the
            # response has started, so it sends nothing more.
            if not started:
                await _send_problem(send, 500, "internal", "Internal error")
            raise


class BodyLimit:
    """Refuses bodies over the cap before anything parses them (413), and oversized headers."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            await _send_problem(send, 431, "headers-too-large", "Request header fields too large")
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():  # RFC 9110: 1*DIGIT; no sign, no spaces
                    await _send_problem(send, 400, "bad-request", "Invalid Content-Length")
                    return
                if len(value) > 12 or int(value) > self.max_body_bytes:
                    await _send_problem(send, 413, "payload-too-large", "Request body too large")
                    return

        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # FastAPI turns any error while reading the body into its own 400: once the cap
            # is crossed, the app's answer is dropped and the 413 below is sent instead.
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            await _send_problem(send, 413, "payload-too-large", "Request body too large")


class BodyTooLarge(Exception):
    pass
