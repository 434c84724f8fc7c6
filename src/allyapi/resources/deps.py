"""How a route gets the resources service: ``resources: Resources``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from allyapi.core.db.session import Session
from allyapi.resources.service import ResourceService


async def resource_service(session: Session) -> ResourceService:
    return ResourceService(session)


Resources = Annotated[ResourceService, Depends(resource_service)]
