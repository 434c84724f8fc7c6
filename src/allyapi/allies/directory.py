"""The directory (``GET /v1/allies``): pages of listed allies, cached per process.

docs/performance.md says how the cache is kept current; allies/listing_repository.py what
*listed* means.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from allyapi.allies.availability import moments_param
from allyapi.allies.repository import (
    COORDINATOR_VIEW_COLUMNS,
    PUBLIC_PROFILE_COLUMNS,
    DirectoryFilter,
    directory_page,
)
from allyapi.allies.schemas import AllyCoordinatorView, AllyPublic
from allyapi.core.db.directory_cache import CachedPage
from allyapi.core.db.models import today, utcnow
from allyapi.core.db.session import Database
from allyapi.core.http.errors import Forbidden, InvalidInput
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.schemas import Page


def available_instant(at: datetime | None, now: bool | None) -> datetime | None:
    """The instant the directory filters availability by: ``available_at``, or the present
    for ``available_now=true`` (``false`` filters nothing); both at once is a 422."""
    if at is not None and now is not None:
        raise InvalidInput(
            "available_at and available_now exclude each other", loc=("query", "available_now")
        )
    if at is not None:
        return at
    return utcnow() if now else None


class DirectoryService:
    """The directory's pages (``GET /v1/allies``): the hot read, served from this process's
    cache while the organisation's directory is unchanged."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def page(
        self,
        org_id: str,
        where: DirectoryFilter,
        *,
        coordinator: bool,
        page: PageRequest,
        at: datetime | None = None,
    ) -> CachedPage:
        """Listed allies for everyone; coordinators may ask for any ``status`` instead. ``at``:
        only allies available then (allies/availability.py).

        The page as JSON bytes, from this process's cache when it holds the organisation's
        current version of it (core/db/directory_cache.py); otherwise one Core statement on an
        autocommit connection (``directory_page``), after a short read of the org's time zones
        when ``at`` is given, validated once and stored. The caller's role has been checked
        already; everything the key holds is what the page depends on, and nothing in it belongs
        to one caller.
        """
        if where.status is not None and not coordinator:
            raise Forbidden("only coordinators may filter the directory by status")
        database = self.database
        cache = database.directory_cache
        if database.directory_listener is not None:
            database.directory_listener.ensure_started()
        on, after = today(), page.after_text()
        # A new directory filter is one more field of DirectoryFilter: in the key and the query.
        # Availability depends on the time: windows are whole minutes, so the instant rounded
        # down to its minute decides the page exactly, and is the key's part for it. The org's
        # time zones it is read against change only with a profile, which bumps the version.
        if at is not None:
            at = at.replace(second=0, microsecond=0)
        key = (org_id, cache.version(org_id), on, coordinator, where, at, page.limit, after)
        cached = cache.get(key)
        if cached is not None:
            return cached
        fields = COORDINATOR_VIEW_COLUMNS if coordinator else PUBLIC_PROFILE_COLUMNS
        async with database.autocommit.connect() as reader:
            if at is not None:
                where = replace(where, moments=await moments_param(reader, org_id, at))
            rows = await directory_page(
                reader, fields, org_id, on, where, limit=page.fetch, after=after
            )
        shown, next_cursor = page.split(rows, lambda row: (row["display_name"], row["id"]))
        # The whole page validated in one call from plain dicts (pydantic-core's fast path) and
        # serialised once: cache hits send these bytes as they are.
        page_type = Page[AllyCoordinatorView] if coordinator else Page[AllyPublic]
        shaped = page_type.model_validate({"items": shown, "next_cursor": next_cursor})
        return cache.put(key, shaped.model_dump_json().encode())
