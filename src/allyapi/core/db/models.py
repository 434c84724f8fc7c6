"""What every table shares: the naming convention, UTC timestamps, JSON columns, tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ORG_ID_MAX = 128


def utcnow() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return utcnow().date()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on PostgreSQL and on SQLite alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class json_array_contains(ColumnElement[bool]):
    """``value`` is an element of the JSON array in ``column`` (GIN-indexable on PostgreSQL).

    The value is a bound parameter listed in ``_traverse_internals`` so statements using this
    element have a cache key: SQLAlchemy compiles them once and binds each call's value, instead
    of compiling the whole statement on every request (half the directory's CPU before).
    A value created at compile time instead would be baked into the cached SQL.
    """

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("value", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: Any, value: str | sa.BindParameter[str]) -> None:
        """``value``: the element to look for, or a named bind parameter (prepared statements)."""
        self.column = column
        self.value = (
            value
            if isinstance(value, sa.BindParameter)
            else sa.bindparam(None, value, type_=sa.String())
        )


@compiles(json_array_contains, "postgresql")
def _contains_pg(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    param = sa.cast(sa.func.jsonb_build_array(element.value), JSONB)
    return f"({compiler.process(element.column, **kw)} @> {compiler.process(param, **kw)})"


@compiles(json_array_contains)
def _contains_default(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.value, **kw)
    column = compiler.process(element.column, **kw)
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})"  # noqa: S608


class json_array_has_language(json_array_contains):
    """RFC 4647 basic filtering over a JSON array of language tags: ``pt`` matches ``pt`` and
    ``pt-BR``, ``pt-BR`` matches ``pt-BR`` and ``pt-BR-x-…``, never ``pt`` or ``ptx``.

    Tags are stored and queried in canonical case (``canonical_language``), so the comparison
    is exact; a validated tag holds only letters, digits and hyphens, so LIKE has no wildcard
    to escape. The exact match comes first so PostgreSQL can answer it from the GIN index.
    """

    inherit_cache = True


@compiles(json_array_has_language, "postgresql")
def _language_pg(element: json_array_has_language, compiler: Any, **kw: Any) -> str:
    exact = _contains_pg(element, compiler, **kw)
    value = compiler.process(element.value, **kw)
    column = compiler.process(element.column, **kw)
    prefix = (
        f"EXISTS (SELECT 1 FROM jsonb_array_elements_text({column}) AS lang(tag) "  # noqa: S608
        f"WHERE lang.tag LIKE {value} || '-%')"
    )
    return f"({exact} OR {prefix})"


@compiles(json_array_has_language)
def _language_default(element: json_array_has_language, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.value, **kw)
    column = compiler.process(element.column, **kw)
    # SQLite's LIKE ignores ASCII case; both sides are canonical, so that changes nothing.
    return (
        f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value} "  # noqa: S608
        f"OR json_each.value LIKE {value} || '-%')"
    )


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table of a table model, typed (SQLModel does not declare ``__table__``)."""
    return cast(sa.Table, model.__table__)  # type: ignore[attr-defined]


def json_column(**kw: Any) -> Any:
    return Field(default_factory=list, sa_type=JSONType, sa_column_kwargs={"nullable": False, **kw})


def utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=index)


def arrival_seq() -> Any:
    """A contribution's place in the aggregates' arrival order (docs/aggregates.md)."""
    return Field(default=None, sa_type=sa.BigInteger, nullable=True)


def arrival_marks() -> Any:
    """Who was new in which cell when the contribution arrived (aggregates/marks.py)."""
    return Field(default=0, sa_column_kwargs={"server_default": sa.text("0")})


class TenantRow(SQLModel):
    """Columns every tenant-owned table has (docs/privacy.md, P8: every row belongs to exactly
    one org)."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: str = Field(max_length=ORG_ID_MAX, index=True)
    created_at: datetime = utc_column()
    updated_at: datetime = utc_column()


class Versioned(SQLModel):
    """A mutable singleton: ``version`` feeds its ETag and guards concurrent updates."""

    version: int = Field(default=1, nullable=False)
