"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request on hot paths)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allyapi.core.http.errors import PROBLEM_BASE, PROBLEM_JSON

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]
MAX_HEADER_BYTES = 16 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
FIXED_PATHS_CACHED = 4096
errors_log = logging.getLogger("allyapi.errors")


def _problem(status: int, slug: str, title: str, detail: str | None = None) -> bytes:
    body: dict[str, object] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return json.dumps(body).encode()


async def _send_problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    detail: str | None = None,
) -> None:
    body = _problem(status, slug, title, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *extra_headers,
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
        started = finished = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                present = {name for name, _ in message.get("headers", [])}
                # A route may set its own (the docs pages' Content-Security-Policy).
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # An unhandled error is answered here, as a normal 500 problem, and goes no
            # further. Starlette would render it in ServerErrorMiddleware (outside every user
            # middleware, so without these headers) and then re-raise it to the server, and
            # uvicorn closes the connection after any exception, even once a complete
            # response was sent: the client could not tell whether its request (a DELETE,
            # an erasure) was done. Only a response cut off mid-body must close the
            # connection, so that one is re-raised. The exception type only is logged: its
            # text may carry request data.
            errors_log.error("unhandled error: %s", type(exc).__name__)
            if not started:
                await _send_problem(send, 500, "internal", "Internal error")
            elif not finished:
                raise


class BodyLimit:
    """Refuses bodies over the cap before anything parses them (413), and oversized headers."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Batch endpoints whose documented maxItems needs more than the default cap.
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
            # PostgreSQL text cannot hold NUL: refused here rather than a 500 from the
            # database (found by Schemathesis), for every parameter at once.
            await _send_problem(send, 422, "invalid-input", "NUL character in the URL")
            return
        limit = self.path_limits.get(scope["path"], self.max_body_bytes)
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            await _send_problem(send, 431, "headers-too-large", "Request header fields too large")
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():  # RFC 9110: 1*DIGIT; no sign, no spaces
                    await _send_problem(send, 400, "bad-request", "Invalid Content-Length")
                    return
                if len(value) > 12 or int(value) > limit:
                    await _send_problem(send, 413, "payload-too-large", "Request body too large")
                    return

        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
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


class JsonBodiesOnly:
    """A request body must be JSON (``application/json`` or any ``application/*+json``, such
    as SCIM's): anything else is a 415 problem before a parser sees it, instead of a 422
    about "a valid dictionary" that sends the client looking in the wrong place."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        has_body, media_type = False, b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                has_body = has_body or value.strip() not in (b"", b"0")
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"content-type":
                media_type = value.split(b";", 1)[0].strip().lower()
        if has_body and not _is_json(media_type):
            await _send_problem(
                send,
                415,
                "unsupported-media-type",
                "Unsupported media type",
                [(b"accept", b"application/json")],
                detail="send the body as application/json",
            )
            return
        await self.app(scope, receive, send)


def _is_json(media_type: bytes) -> bool:
    kind, _, subtype = media_type.partition(b"/")
    return kind == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))


class MethodNotAllowed:
    """405 answers that tell the truth about a path (RFC 9110 §15.5.6).

    - ``Allow`` lists every method of every route serving the path: Starlette lists only the
      methods of the first route whose path matched (``GET`` and ``POST /v1/allies`` are two).
    - A fixed path wins over a template: ``GET /v1/allies/roster-sync`` is a 405 (that resource
      takes ``POST`` only), not a 422 from ``GET /v1/allies/{ally_id}`` with a malformed id.
    """

    def __init__(self, app: ASGIApp, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes
        self._table: list[tuple[re.Pattern[str], bool, frozenset[str]]] | None = None
        # Path → methods of the fixed routes serving it, for the check every request makes
        # (a scan of every route pattern otherwise). Bounded: paths with ids are unbounded.
        self._fixed: dict[str, frozenset[str]] = {}

    def _build(self) -> list[tuple[re.Pattern[str], bool, frozenset[str]]]:
        table = []
        for context in iter_route_contexts(self.routes()):
            path, route_methods = context.path, getattr(context, "methods", None)
            if path and route_methods:
                table.append((compile_path(path)[0], "{" not in path, frozenset(route_methods)))
        return table

    def _methods(self, path: str, *, fixed_only: bool) -> set[str]:
        if self._table is None:  # built on first use: every router is included by then
            self._table = self._build()
        allowed: set[str] = set()
        for pattern, fixed, route_methods in self._table:
            if (fixed or not fixed_only) and pattern.match(path):
                allowed |= route_methods
        return allowed

    def _fixed_methods(self, path: str) -> frozenset[str]:
        methods = self._fixed.get(path)
        if methods is None:
            if len(self._fixed) >= FIXED_PATHS_CACHED:
                self._fixed.clear()
            methods = self._fixed[path] = frozenset(self._methods(path, fixed_only=True))
        return methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fixed = self._fixed_methods(scope["path"])
        if fixed and scope["method"] not in fixed:
            allow = ", ".join(sorted(fixed))
            await _send_problem(
                send, 405, "method-not-allowed", "Method not allowed", [(b"allow", allow.encode())]
            )
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                allow = ", ".join(sorted(self._methods(scope["path"], fixed_only=False)))
                message["headers"] = [*headers, (b"allow", allow.encode())]
            await send(message)

        await self.app(scope, receive, send_with_allow)
