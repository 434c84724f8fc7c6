"""How a route gets a workflow: ``availability: AllyAvailabilityFlow``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from allyapi.allies.deps import Allies
from allyapi.core.auth.security import AppSettings
from allyapi.core.db.session import Session
from allyapi.workflows.ally_availability import AllyAvailability


async def ally_availability(
    allies: Allies, session: Session, settings: AppSettings
) -> AllyAvailability:
    return AllyAvailability(allies, session, settings)


AllyAvailabilityFlow = Annotated[AllyAvailability, Depends(ally_availability)]
