"""Logging that cannot carry a requester's identity.

Access logs print the route *template* and status, never the query string (it may hold
search text) and never headers. uvicorn's own access log is turned off by ``allyapi serve``.

SQL never reaches a log line with its values, at any level (docs/operations.md, "Logs"):

- every engine is built with ``hide_parameters=True`` (core/db/session.py), so SQLAlchemy's
  statement log and its exception messages print ``[SQL parameters hidden]``;
- the loggers that would print parameters or rows below INFO are capped by a *filter* on the
  logger that creates the records: SQLAlchemy's engine logs every row it reads at DEBUG,
  aiosqlite logs each call with its arguments (the statement *and* its parameters) at DEBUG.
  A filter, not only a level, because any later logging configuration (a ``--log-config``
  file, a test's ``caplog``) may set those loggers' levels back to DEBUG; it leaves filters
  in place.
"""

from __future__ import annotations

import logging

# Logger name → the lowest level a record of it may have. Records are filtered where they are
# created, so these are the loggers the libraries actually log through.
CAPPED_LOGGERS = {
    "sqlalchemy.engine.Engine": logging.INFO,  # INFO: statements (values hidden); DEBUG: rows
    "aiosqlite": logging.INFO,  # DEBUG: "executing functools.partial(execute, sql, params)"
    "asyncpg": logging.INFO,
    "asyncpg.pool": logging.INFO,
}

_configured = False


class LevelFloor(logging.Filter):
    """Drops records below ``floor``, whatever level the logger is set to."""

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.floor


def cap_driver_loggers() -> None:
    """Idempotent: each capped logger carries exactly one ``LevelFloor``."""
    for name, floor in CAPPED_LOGGERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(existing, LevelFloor) for existing in logger.filters):
            logger.addFilter(LevelFloor(floor))


def configure_logging(level: str = "INFO") -> None:
    global _configured
    cap_driver_loggers()
    if _configured:
        return
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    _configured = True
