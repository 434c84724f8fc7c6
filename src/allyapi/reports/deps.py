"""How a route gets the reports service: ``reports: Reports``, with the app's k."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from allyapi.core.auth.security import AppSettings
from allyapi.core.db.session import Session
from allyapi.reports.service import ReportService


async def report_service(session: Session, settings: AppSettings) -> ReportService:
    return ReportService(session, settings.k_anonymity)


Reports = Annotated[ReportService, Depends(report_service)]
