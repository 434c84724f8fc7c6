"""The Core fast paths read exactly what their response schemas show.

The directory and a contact request's ally profile select declared column tuples
(allies/repository.py), validated straight into ``AllyPublic``/``AllyCoordinatorView``: a
field without its column would fail at runtime, a column without its field would read more
than the answer shows.
"""

from __future__ import annotations

from allyapi.allies.listing_repository import ALLIES
from allyapi.allies.repository import COORDINATOR_VIEW_COLUMNS, LISTED, PUBLIC_PROFILE_COLUMNS
from allyapi.allies.schemas import AllyCoordinatorView, AllyOwnView, AllyPublic
from allyapi.contact_requests.repository import PUBLIC_PROFILE


def test_every_response_field_has_its_column_and_nothing_more() -> None:
    assert set(PUBLIC_PROFILE_COLUMNS) == set(AllyPublic.model_fields)
    assert set(PUBLIC_PROFILE) == set(AllyPublic.model_fields)
    assert set(COORDINATOR_VIEW_COLUMNS) == set(AllyCoordinatorView.model_fields)
    assert set(AllyOwnView.model_fields) <= set(COORDINATOR_VIEW_COLUMNS)


def test_the_declared_names_are_columns_of_the_allies_table() -> None:
    for name in COORDINATOR_VIEW_COLUMNS:
        assert name == LISTED or name in ALLIES.c, name
    assert LISTED not in ALLIES.c
