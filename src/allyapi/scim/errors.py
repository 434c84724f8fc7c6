"""SCIM errors (RFC 7644 §3.12) under ``/scim/``: the project's problems, in SCIM's shape.

Everything below the routers raises the project's one error family (core/http/errors.py), and
middleware (415, 405, 413, rate limits) answers problem+json before any route runs. Rather
than a second family, ``ScimErrors`` rewrites every problem+json answer on a ``/scim/`` path
into a SCIM Error document (``application/scim+json``), keeping the status and headers:

- a 422 (a body or query that does not validate) is SCIM's ``400 invalidValue``;
- the SCIM-only problems below carry their ``scimType``;
- a problem's ``detail`` is kept (it never holds a submitted value; core/http/errors.py).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allyapi.core.http.errors import PROBLEM_BASE, PROBLEM_JSON, AppError

SCIM_JSON = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_PROBLEM_BYTES = 64 * 1024


class ScimProblem(AppError):
    status, slug, title = 400, "scim-invalid-value", "Invalid value"
    scim_type: str | None = "invalidValue"


class InvalidFilter(ScimProblem):
    slug, title, scim_type = "scim-invalid-filter", "Invalid filter", "invalidFilter"


class InvalidSyntax(ScimProblem):
    slug, title, scim_type = "scim-invalid-syntax", "Invalid syntax", "invalidSyntax"


class InvalidPath(ScimProblem):
    slug, title, scim_type = "scim-invalid-path", "Invalid path", "invalidPath"


class MutabilityError(ScimProblem):
    slug, title, scim_type = "scim-mutability", "Attribute not modifiable", "mutability"


class Uniqueness(ScimProblem):
    status, slug, title, scim_type = 409, "scim-uniqueness", "Already linked", "uniqueness"


class NotImplementedHere(ScimProblem):
    status, slug, title, scim_type = 501, "scim-not-implemented", "Not implemented", None


# Problem type → scimType, for the statuses RFC 7644 gives one.
SCIM_TYPES = {
    PROBLEM_BASE + cls.slug: cls.scim_type
    for cls in (ScimProblem, InvalidFilter, InvalidSyntax, InvalidPath, MutabilityError, Uniqueness)
}
SCIM_TYPES[PROBLEM_BASE + "invalid-input"] = "invalidValue"
SCIM_TYPES[PROBLEM_BASE + "bad-request"] = "invalidSyntax"


def scim_error(problem: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The SCIM status and Error document for a problem+json body."""
    status = int(problem.get("status", 500))
    status = 400 if status == 422 else status
    document: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status)}
    scim_type = SCIM_TYPES.get(str(problem.get("type", "")))
    if scim_type is not None and status in (400, 409):
        document["scimType"] = scim_type
    detail = problem.get("detail") or problem.get("title")
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        where = ".".join(str(part) for part in errors[0].get("loc", [])[1:])
        detail = f"{errors[0].get('msg', detail)}" + (f" ({where})" if where else "")
    if detail:
        document["detail"] = str(detail)[:1000]
    return status, document


class ScimErrors:
    """ASGI middleware: problem+json answers on ``/scim/`` become SCIM Error documents."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/scim/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def rewrite(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if content_type.split(b";")[0].strip() != PROBLEM_JSON.encode():
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body", False) and len(body) <= MAX_PROBLEM_BYTES:
                return
            try:
                status, document = scim_error(json.loads(body))
            except (ValueError, TypeError):
                status, document = start["status"], {"schemas": [ERROR_SCHEMA]}
                document["status"] = str(status)
            encoded = json.dumps(document, separators=(",", ":")).encode()
            headers = [
                (name, value)
                for name, value in start.get("headers", [])
                if name not in (b"content-type", b"content-length")
            ]
            headers += [
                (b"content-type", SCIM_JSON.encode()),
                (b"content-length", str(len(encoded)).encode()),
            ]
            await send({**start, "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": encoded})

        await self.app(scope, receive, rewrite)
