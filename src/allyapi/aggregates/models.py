"""The last arrival number handed out per organisation and source (aggregates/arrivals.py).

A counter row instead of ``max(seq)``: no index on the sequence columns of the big tables,
and the arrival pass (one at a time per organisation) is the only writer.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.models import ORG_ID_MAX


class ArrivalClock(SQLModel, table=True):
    __tablename__ = "arrival_clocks"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    source: str = Field(max_length=16, primary_key=True)
    last_seq: int = Field(default=0, sa_type=sa.BigInteger)
