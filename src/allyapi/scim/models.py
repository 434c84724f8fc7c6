"""The link between an ally profile and the identity provider's SCIM user.

A SCIM user *is* an ally profile (docs/scim.md): its SCIM ``id`` is the ally's id, so the row
needs no id of its own. The ``userName`` (the person's ``sub``) and the ``externalId`` are
sealed under the data keys like every other stored identifier of a person: the profile itself
keeps only the keyed reference of the ``sub`` (allies/models.py), and a SCIM GET must be able
to answer the ``userName`` back.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import ORG_ID_MAX, utc_column


class AllyAccount(SQLModel, table=True):
    __tablename__ = "ally_accounts"

    id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("allies.id", ondelete="CASCADE"), primary_key=True
        )
    )
    org_id: str = Field(max_length=ORG_ID_MAX, index=True)
    user_name_sealed: str = Field(sa_type=sa.Text, nullable=False)
    external_id_sealed: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    version: int = Field(default=1, nullable=False)
    created_at: datetime = utc_column()
    updated_at: datetime = utc_column()
