"""ETags for mutable singletons and the ``If-Match`` check (docs/api-conventions.md)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated

from fastapi import Header, Response

from allyapi.core.http.errors import PreconditionFailed

IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=200, description="ETag from a previous read; 412 if stale"),
]


def etag_for(resource_id: uuid.UUID, version: int) -> str:
    digest = hashlib.sha256(f"{resource_id}:{version}".encode()).hexdigest()[:20]
    return f'"{digest}"'


def set_etag(response: Response, resource_id: uuid.UUID, version: int) -> None:
    response.headers["ETag"] = etag_for(resource_id, version)


def check_if_match(if_match: str | None, resource_id: uuid.UUID, version: int) -> None:
    if if_match is None:
        return
    current = etag_for(resource_id, version)
    candidates = {part.strip().removeprefix("W/") for part in if_match.split(",")}
    if "*" not in candidates and current not in candidates:
        raise PreconditionFailed("the resource changed since it was read (ETag mismatch)")


IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        max_length=1000,
        description="ETags of copies you hold; 304 (no body) when the page is still one of them",
    ),
]


def none_match(if_none_match: str | None, current: str) -> bool:
    """True when the client's copy is current (RFC 9110: weak comparison for GET)."""
    if if_none_match is None:
        return False
    candidates = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return "*" in candidates or current in candidates
