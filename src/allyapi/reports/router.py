"""/v1/reports/program: programme health for coordinators and analysts, aggregate only
(docs/privacy.md, P6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from allyapi.aggregates.buckets import Interval
from allyapi.core.auth.security import CoordinatorOrAnalyst
from allyapi.core.http.openapi import AGGREGATE
from allyapi.core.http.schemas import QueryDate
from allyapi.reports.deps import Reports
from allyapi.reports.schemas import GroupBy, ProgramReport

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get(
    "/program",
    summary="Programme report (k-anonymous, fixed calendar periods)",
    openapi_extra=AGGREGATE,
)
async def get_program_report(
    caller: CoordinatorOrAnalyst,
    reports: Reports,
    from_: Annotated[
        QueryDate | None,
        Query(
            alias="from",
            description="First day (1970-01-01..9998-12-31); snapped back to its ISO week or month",
        ),
    ] = None,
    to: Annotated[
        QueryDate | None,
        Query(description="Last day (1970-01-01..9998-12-31); snapped forward to its period's end"),
    ] = None,
    interval: Annotated[Interval, Query(description="Period length")] = Interval.week,
    group_by: Annotated[GroupBy | None, Query(description="Breakdown within each period")] = None,
) -> ProgramReport:
    """Per period (and group): requests created, accepted, completed, median hours to accept,
    signposting rate, feedback averages, ally wellbeing; plus today's listed allies and
    training compliance.

    Each cell (a period, a group) shows the figures of its first ⌊n/k⌋·k people in the order
    their contributions arrived, so figures move only in steps of k people; groups are
    released from their period's total and come from the report topics (`/v1/topics`) or
    the urgencies. Every figure from fewer than k people is `null` with `suppressed: true`;
    the next-smallest cells are hidden too so totals cannot reveal them; periods are whole ISO weeks (Monday to
    Sunday, UTC) or calendar months so overlapping queries share identical cells. At most two
    years of weeks or five years of months (422 beyond). Defaults: the year up to today.
    """
    return await reports.program(caller.org, from_, to, interval, group_by)
