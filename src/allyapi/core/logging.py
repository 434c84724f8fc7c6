"""Logging that cannot carry a requester's identity.

Access logs print the route *template* and status, never the query string (it may hold
search text) and never headers. uvicorn's own access log is turned off by ``allyapi serve``.
"""

from __future__ import annotations

import logging

_configured = False


def configure_logging(level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    _configured = True
