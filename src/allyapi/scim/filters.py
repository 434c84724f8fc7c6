"""SCIM filters: parsed by scim2-models, of which allyapi answers ``userName eq "…"`` only.

That is what identity providers send to find a user before provisioning one (Okta, Entra ID).
Any other filter that parses is a 400 ``invalidFilter`` saying what is supported (a provider
may support a subset: RFC 7644 §3.4.2.2); one that does not parse is the same 400.
"""

from __future__ import annotations

from scim2_models import SCIMException, ScimFilter
from scim2_models.path.expressions import CompareOperator, Comparison

from allyapi.scim.errors import InvalidFilter

MAX_FILTER_CHARS = 1000


def user_name_wanted(expression: str) -> str:
    """The userName of a ``userName eq "…"`` filter; anything else is an ``InvalidFilter``."""
    if len(expression) > MAX_FILTER_CHARS or "\x00" in expression:
        raise InvalidFilter("the filter is too long or holds a NUL character")
    try:
        node = ScimFilter(expression).ast
    except SCIMException:
        raise InvalidFilter("the filter does not parse (RFC 7644 §3.4.2.2)") from None
    if (
        isinstance(node, Comparison)
        and node.op == CompareOperator.eq
        and node.attr_path.sub_attr is None
        and node.attr_path.attr.lower() == "username"
        and node.attr_path.uri in (None, "urn:ietf:params:scim:schemas:core:2.0:User")
        and isinstance(node.value, str)
    ):
        return node.value
    raise InvalidFilter('only filters of the form userName eq "…" are supported')
