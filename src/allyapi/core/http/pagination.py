"""Keyset pagination with signed, endpoint-bound cursors (docs/pagination.md).

Every list takes ``limit`` and ``cursor`` through one dependency, ``PageQuery``, and gives
its service a ``PageRequest``. The service reads the position with ``after_text`` or
``after_time``, has its repository read ``fetch`` rows (``limit + 1``) after it, and cuts the
page and makes the next cursor with ``split``; nothing else encodes or decodes a cursor.

A cursor is the sort key of the last row of a page (a text or an instant, and the row's id),
signed with HMAC-SHA256 under a key derived from the pseudonym key (HKDF, its own label) over
the caller's org, the request path and every query parameter except ``cursor`` and ``limit``.
A cursor of another list, of the same list with other filters, of another org, hand-made,
truncated or signed with another key is a 422 before its content is read; the content is
validated all the same (an instant must carry its offset and stay within the calendar).
Page size may change between pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request

from allyapi.core.auth.security import Caller
from allyapi.core.http.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAC_BYTES = 16
ID_BYTES = 16
# The longest text any list sorts by (a course or resource name): 200 characters, at most
# 4 bytes each in UTF-8. The longest cursor: base64 of MAC + id + that text.
SORT_TEXT_MAX = 200
MAX_CURSOR_CHARS = -(-(MAC_BYTES + ID_BYTES + 4 * SORT_TEXT_MAX) // 3) * 4
UNPAGED = ("cursor", "limit")  # the query parameters a cursor is not bound to

Row = TypeVar("Row")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..100)")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        pattern=r"^[A-Za-z0-9_\-=]+$",
        description=(
            "Opaque: the `next_cursor` of the previous page of this same list, with the same "
            "filters (any other cursor is a 422)"
        ),
    ),
]


def _invalid() -> InvalidInput:
    return InvalidInput("cursor is not valid for this list", loc=("query", "cursor"))


@dataclass(frozen=True)
class PageRequest:
    """One page of one list: its size, the cursor sent (if any) and what cursors bind to."""

    limit: int
    cursor: str | None
    key: bytes
    binding: bytes

    def __repr__(self) -> str:
        return f"PageRequest(limit={self.limit})"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.key, self.binding + b"\x00" + payload, hashlib.sha256).digest()

    def cursor_at(self, value: str | datetime, row_id: uuid.UUID) -> str:
        """The signed cursor of a position in this list (the sort value and id of a row)."""
        text = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
        payload = row_id.bytes + text.encode()
        token = self._mac(payload)[:MAC_BYTES] + payload
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def _decode(self) -> tuple[str, uuid.UUID] | None:
        if self.cursor is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(self.cursor + "=" * (-len(self.cursor) % 4))
        except (ValueError, binascii.Error):
            raise _invalid() from None
        mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
        if len(payload) < ID_BYTES or not hmac.compare_digest(mac, self._mac(payload)[:MAC_BYTES]):
            raise _invalid()
        try:
            return payload[ID_BYTES:].decode(), uuid.UUID(bytes=payload[:ID_BYTES])
        except ValueError:
            raise _invalid() from None

    def after_text(self) -> tuple[str, uuid.UUID] | None:
        """The (text, id) the previous page ended at: lists sorted by a name."""
        return self._decode()

    def after_time(self) -> tuple[datetime, uuid.UUID] | None:
        """The (instant, id) the previous page ended at, in UTC: lists sorted by time."""
        decoded = self._decode()
        if decoded is None:
            return None
        text, row_id = decoded
        try:
            moment = datetime.fromisoformat(text)
            # 0001-01-01T00:00+01:00 is before year 1 in UTC: OverflowError.
            utc = moment.astimezone(UTC) if moment.tzinfo is not None else None
        except (ValueError, OverflowError):
            raise _invalid() from None
        if utc is None:  # ours always carry the offset
            raise _invalid()
        return utc, row_id

    @property
    def fetch(self) -> int:
        """How many rows a list's query reads: one more than the page, to know if more exist."""
        return self.limit + 1

    def split(
        self, rows: Sequence[Row], key: Callable[[Row], tuple[str | datetime, uuid.UUID]]
    ) -> tuple[Sequence[Row], str | None]:
        """The page's rows (at most ``limit`` of the ``fetch`` read) and the cursor after it,
        None on the last page; ``key`` gives a row's sort value and id. Every list ends here."""
        if len(rows) <= self.limit:
            return rows, None
        return rows[: self.limit], self.cursor_at(*key(rows[self.limit - 1]))


def binding_of(org: str, path: str, query: Sequence[tuple[str, str]]) -> bytes:
    """What a cursor is bound to: the org, the path and the filters, canonically."""
    filters = sorted((name, value) for name, value in query if name not in UNPAGED)
    return json.dumps([org, path, filters], separators=(",", ":")).encode()


async def page_request(
    request: Request, caller: Caller, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> PageRequest:
    key: bytes = request.app.state.settings.cursor_key
    binding = binding_of(caller.org, request.url.path, request.query_params.multi_items())
    return PageRequest(limit=limit, cursor=cursor, key=key, binding=binding)


PageQuery = Annotated[PageRequest, Depends(page_request)]
