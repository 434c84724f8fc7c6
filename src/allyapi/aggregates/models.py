"""Counters the arrival pass (aggregates/arrivals.py, one at a time per organisation) keeps.

- ``arrival_clocks``: the last arrival number handed out per organisation and source. A
  counter row instead of ``max(seq)``: no index on the sequence columns of the big tables.
- ``bucket_arrivals``: how many contributions have arrived in each period bucket. Report
  figures change only when contributions arrive, so a cell computed at a bucket's count
  stays exact until the count moves (reports/cells.py).
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import ORG_ID_MAX


class ArrivalClock(SQLModel, table=True):
    __tablename__ = "arrival_clocks"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    source: str = Field(max_length=16, primary_key=True)
    last_seq: int = Field(default=0, sa_type=sa.BigInteger)


class BucketArrivals(SQLModel, table=True):
    __tablename__ = "bucket_arrivals"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    interval: str = Field(max_length=8, primary_key=True)
    bucket: date = Field(primary_key=True)
    arrivals: int = Field(default=0, sa_type=sa.BigInteger)
