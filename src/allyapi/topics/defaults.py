"""The report topics of an organisation that defined none, and the bounds on the list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

MAX_LISTED = 50  # topics listed at once: every one gets a group, none is ever folded away
MAX_HISTORY = 500  # rows an organisation may accumulate, listed and retired
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Never edit in place: an organisation that never changed its list uses these for every
# period, so an edit would regroup periods already released (and disagree with the marks
# their contributions got when they arrived, aggregates/marks.py). Add a migration that
# stores the old list for every organisation without rows first.
DEFAULT_TOPICS = (
    "anxiety",
    "burnout",
    "conflict",
    "family",
    "grief",
    "health",
    "identity",
    "loneliness",
    "low-mood",
    "money",
    "relationships",
    "sleep",
    "stress",
    "workload",
)
_NAMESPACE = uuid.UUID("6f1d3c1e-2b7a-4f43-9a51-0d3e8f6b2a10")


def default_topic_id(org: str, key: str) -> uuid.UUID:
    """Stable per organisation, so a default read before any change keeps its id (and ETag)
    once the first change stores the defaults."""
    return uuid.uuid5(_NAMESPACE, f"{org}\n{key}")
