"""Keyset pagination with opaque cursors (SPEC §3: stable under inserts).

A cursor is the sort key of the last row of a page, JSON-encoded and base64url'd. It says
nothing secret (it is the caller's own view of the data); a tampered cursor is a 422.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import Query

from allyapi.core.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..100)")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512, pattern=r"^[A-Za-z0-9_\-=]+$", description="Opaque cursor from next_cursor"
    ),
]


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[str] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid", loc=("query", "cursor")) from None
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, str) for v in values)
    ):
        raise InvalidInput("cursor is not valid", loc=("query", "cursor"))
    return values
