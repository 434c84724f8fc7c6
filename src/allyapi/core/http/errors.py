"""One error family, mapped in one place to RFC 9457 problem details.

Services raise ``AppError`` subclasses; nothing below a router raises ``HTTPException``.
Validation errors report where and why, never the submitted value (a message or a contact
detail must not come back in an error body or a log line).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from allyapi.core.db import faults as dbfaults
from allyapi.core.privacy.crypto import UnknownDataKey

log = logging.getLogger("allyapi.errors")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://allyapi.dev/problems/"
# A replica that lacks a data key waits for its new key ring (a rollout takes a while); a
# retry may also reach a replica that already has it.
KEY_RETRY_AFTER_SECONDS = 5


class ValidationIssue(BaseModel):
    loc: list[Annotated[str, Field(max_length=100)] | Annotated[int, Field(ge=0, le=2**31 - 1)]] = (
        Field(max_length=16)
    )
    msg: str = Field(max_length=500)
    type: str = Field(max_length=100)


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(max_length=200, examples=[PROBLEM_BASE + "not-found"])
    title: str = Field(max_length=200)
    status: int = Field(ge=400, le=599)
    detail: str | None = Field(default=None, max_length=1000)
    errors: list[ValidationIssue] | None = Field(default=None, max_length=100)


class AppError(Exception):
    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Missing or invalid credentials"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="allyapi"'})


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(AppError):
    """409. ``extensions`` adds RFC 9457 extension members (e.g. ``alternatives``) to the body."""

    status, slug, title = 409, "conflict", "Conflict"

    def __init__(
        self, detail: str | None = None, *, extensions: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.extensions = dict(extensions or {})


class PreconditionFailed(AppError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class InvalidInput(AppError):
    status, slug, title = 422, "invalid-input", "Invalid input"

    def __init__(self, detail: str, *, loc: Sequence[str | int] = ()) -> None:
        super().__init__(detail)
        self.errors = [{"loc": list(loc), "msg": detail, "type": "value_error"}] if loc else None


class TooManyRequests(AppError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(AppError):
    status, slug, title = 503, "unavailable", "Service unavailable"


_STATUS_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Missing or invalid credentials"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-input", "Invalid input"),
    431: ("headers-too-large", "Request header fields too large"),
}


def problem_response(
    status: int,
    *,
    slug: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    default_slug, default_title = _STATUS_TITLES.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or default_slug),
        "title": title or default_title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    # Extension members never override the standard ones.
    body.update({k: v for k, v in (extensions or {}).items() if k not in body})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _clean_validation_errors(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """Keep location, message and type; drop ``input`` and ``ctx`` (they echo the payload)."""
    cleaned = []
    for err in raw[:100]:
        # A location may name a key the client sent: NUL is replaced (the contract's strings
        # never hold one, PostgreSQL text cannot).
        loc = [
            part if isinstance(part, int) else str(part)[:100].replace("\x00", "\ufffd")
            for part in err.get("loc", ())
        ]
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            msg = "Body is not valid JSON"
        cleaned.append({"loc": loc, "msg": msg[:500], "type": str(err.get("type", ""))[:100]})
    return cleaned


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422, detail="The request did not validate", errors=_clean_validation_errors(exc.errors())
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
    return problem_response(exc.status_code, detail=detail, headers=exc.headers)


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    return _internal(exc)


def _internal(exc: Exception) -> JSONResponse:
    # The exception type only: an exception's text may carry request data.
    log.error("unhandled error: %s", type(exc).__name__)
    return problem_response(500, slug="internal", title="Internal error")


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    """A lost or unreachable database is a 503 the client may retry, not a 500 (dbfaults.py).

    Only the exception type is logged, and the body says nothing about the database.
    """
    return error_response(exc)


async def _unknown_data_key(_: Request, exc: Exception) -> JSONResponse:
    """A record sealed under a key this process does not hold: a key rotation reached the
    database before this replica's configuration (README, "Rotating data keys"). Nothing
    is wrong with the record, and a replica with the new ring reads it: 503, retry."""
    log.warning("data key not configured on this server: %s", type(exc).__name__)
    return problem_response(
        503,
        slug="key-unavailable",
        title="Data key unavailable",
        detail="This server does not hold the data key for this record yet; retry shortly",
        headers={"Retry-After": str(KEY_RETRY_AFTER_SECONDS)},
    )


def error_response(exc: Exception) -> JSONResponse:
    """The answer the handlers below give to ``exc``, for code outside the routes (a
    middleware): an ``AppError`` as itself, an unreachable database as 503, else 500."""
    if isinstance(exc, AppError):
        return problem_response(
            exc.status,
            slug=exc.slug,
            title=exc.title,
            detail=exc.detail,
            errors=getattr(exc, "errors", None),
            headers=exc.headers,
            extensions=getattr(exc, "extensions", None),
        )
    if dbfaults.unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return _unavailable()
    return _internal(exc)


def _unavailable() -> JSONResponse:
    return problem_response(
        503,
        slug=ServiceUnavailable.slug,
        title=ServiceUnavailable.title,
        detail="The service is briefly unavailable; retry shortly",
        headers={"Retry-After": str(dbfaults.RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(UnknownDataKey, _unknown_data_key)
    for database_error in dbfaults.HANDLED:
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
