"""An ally row shaped into a response: the coordinator's, the ally's own or the public view.

Only the response schemas' fields are read, so a new column never reaches a response
unless a schema names it (docs/privacy.md).
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa

from allyapi.allies.models import Ally
from allyapi.allies.schemas import AllyCoordinatorView, AllyPublic

V = TypeVar("V", bound=AllyCoordinatorView)


def managed_view(ally: Ally | sa.Row[Any], listed: bool, schema: type[V]) -> V:
    """The coordinator's or the ally's own view; ``listed`` comes from SQL, not the row."""
    fields = {name: getattr(ally, name) for name in schema.model_fields if name != "listed"}
    return schema.model_validate({**fields, "listed": listed})


def public_view(ally: Ally | sa.Row[Any]) -> AllyPublic:
    return AllyPublic.model_validate(ally)
