"""ETags for mutable singletons and the ``If-Match`` check (docs/api-conventions.md)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated

from fastapi import Header, Response

from allyapi.core.errors import PreconditionFailed

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
