"""Cached report cells (see reports/cells.py).

A row holds the released figures of one period bucket for one breakdown: values and their
populations, never a row, a person or a requester reference. Like the report itself, it is
data any coordinator or analyst of the org may see (after suppression). ``arrivals`` is the
bucket's arrival count it was computed at: the row is valid while the count is unchanged.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import ORG_ID_MAX, JSONType, utc_column


class ReportCellCache(SQLModel, table=True):
    __tablename__ = "report_cells"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    interval: str = Field(max_length=8, primary_key=True)
    # The rule and k ("r2:k5"), then "", ":urgency" or ":topic:" + a digest of the groups.
    breakdown: str = Field(max_length=40, primary_key=True)
    bucket: date = Field(primary_key=True)
    computed_at: datetime = utc_column()
    arrivals: int = Field(
        default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": sa.text("0")}
    )
    cells: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONType, sa_column_kwargs={"nullable": False}
    )
