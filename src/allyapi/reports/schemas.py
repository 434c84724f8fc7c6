"""The programme report: fixed calendar periods, optional breakdown, every cell k-anonymous
(docs/privacy.md, P6)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from allyapi.aggregates.buckets import Interval
from allyapi.core.http.schemas import Count, PublicSchema
from allyapi.core.settings import K_MAX
from allyapi.reports.anonymity import Figure


class GroupBy(StrEnum):
    topic = "topic"
    urgency = "urgency"


class ReportCells(PublicSchema):
    """One period (and group). Request figures follow the cohort of requests *created* in the
    period; feedback figures the feedback *given* in the period."""

    requests_created: Figure
    requests_accepted: Figure = Field(description="Of the requests created, how many accepted")
    requests_completed: Figure = Field(description="Of the requests created, how many completed")
    median_hours_to_accept: Figure
    signposting_rate: Figure = Field(
        description="Share of completed requests whose debrief says the person was signposted"
    )
    feedback_rating_average: Figure
    feedback_felt_heard_rate: Figure
    feedback_would_recommend_rate: Figure
    ally_wellbeing_average: Figure = Field(
        description="Allies' own wellbeing (1–5) from debriefs; k counts distinct allies"
    )


class ReportGroup(PublicSchema):
    key: str = Field(max_length=64)
    cells: ReportCells


class ReportPeriod(PublicSchema):
    label: str = Field(max_length=8, examples=["2026-W48", "2026-11"])
    starts_on: date
    ends_on: date
    total: ReportCells
    groups: list[ReportGroup] = Field(max_length=200)


class CurrentFigures(PublicSchema):
    """Today's state of the ally network (not per period: there is no history of it), in
    steps of k allies like every other figure: a count shows its first ⌊n/k⌋·k, so 0 means
    fewer than k."""

    listed_allies: Count = Field(description="Listed allies, in steps of k")
    active_allies: Count = Field(description="Active allies, in steps of k")
    training_compliance: float | None = Field(
        description=(
            "Active allies holding every required course over active allies, both in steps "
            "of k (null: fewer than k active)"
        )
    )


class ProgramReport(PublicSchema):
    interval: Interval
    group_by: GroupBy | None
    starts_on: date = Field(description="`from` snapped back to the start of its period")
    ends_on: date = Field(description="`to` snapped forward to the end of its period")
    k: int = Field(ge=3, le=K_MAX, description="The k-anonymity threshold in force")
    periods: list[ReportPeriod] = Field(max_length=110)
    current: CurrentFigures
