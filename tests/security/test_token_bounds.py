"""Token lifetimes and claim values are bounded before anything reaches the database.

``exp - iat`` may not exceed ALLYAPI_JWT_MAX_LIFETIME_SECONDS (default one day); ``exp``,
``iat`` and ``nbf`` of any odd value or type are a 401, never a 500; ``org`` must be 1-128
and ``sub`` 1-256 printable characters. Each case is sent to a read and to a write: on
PostgreSQL an ``org`` longer than its column or holding a NUL used to fail every write (and
with a NUL every read) with a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from allyapi.core.auth.tokens import TokenVerifier, mint_dev_token
from allyapi.core.settings import DAY_SECONDS, Settings
from tests.helpers import ORG, assert_problem

READ = "/v1/resources"
WRITE = "/v1/feedback"  # an employee write that needs nothing set up first
FEEDBACK = {"category": "programme", "rating": 4}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(settings: Settings, **changes: Any) -> str:
    """An HS256 token of the development issuer, its claims serialised as given (so values a
    JSON library would refuse, like 10**400 or Infinity, reach the API as they are)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "emp-1",
        "org": ORG,
        "roles": ["employee"],
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    assert settings.jwt_secret
    mac = hmac.new(settings.jwt_secret.encode(), f"{header}.{body}".encode(), hashlib.sha256)
    return f"{header}.{body}.{b64url(mac.digest())}"


async def assert_refused_everywhere(client: httpx.AsyncClient, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    assert_problem(await client.get(READ, headers=headers), 401)
    assert_problem(await client.post(WRITE, json=FEEDBACK, headers=headers), 401)


async def test_a_well_formed_token_reads_and_writes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    headers = {"Authorization": f"Bearer {signed(settings)}"}
    assert (await client.get(READ, headers=headers)).status_code == 200
    assert (await client.post(WRITE, json=FEEDBACK, headers=headers)).status_code == 201


# --- lifetime ---------------------------------------------------------------------------------


async def test_a_lifetime_of_exactly_the_maximum_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    now = int(time.time())
    token = signed(settings, iat=now, exp=now + settings.jwt_max_lifetime_seconds)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(READ, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "lifetime",
    [DAY_SECONDS + 1, 30 * DAY_SECONDS, 10 * 365 * DAY_SECONDS],
    ids=["a-second-too-long", "a-month", "ten-years"],
)
async def test_longer_lifetimes_are_refused(
    client: httpx.AsyncClient, settings: Settings, lifetime: int
) -> None:
    now = int(time.time())
    await assert_refused_everywhere(client, signed(settings, iat=now, exp=now + lifetime))


async def test_the_maximum_lifetime_is_configurable(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.jwt_max_lifetime_seconds == DAY_SECONDS  # the default
    now = int(time.time())
    token = signed(settings, iat=now - 100, exp=now + 600)
    short = settings.model_copy(update={"jwt_max_lifetime_seconds": 300})
    with pytest.raises(ValueError, match="lifetime"):
        mint_dev_token(short, sub="a", org=ORG, roles=["employee"], ttl_seconds=301)
    with pytest.raises(Exception, match="invalid token"):
        TokenVerifier(short).verify(token)
    assert TokenVerifier(settings).verify(token).org == ORG


def test_the_maximum_lifetime_setting_is_bounded() -> None:
    for bad in (0, 59, 31 * DAY_SECONDS):
        with pytest.raises(ValueError, match="jwt_max_lifetime_seconds"):
            Settings(_env_file=None, jwt_max_lifetime_seconds=bad)  # type: ignore[call-arg]


# --- extreme numeric claims -------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    1e308,
    -1e308,
    10**400,
    -(10**400),
    -1,
    float("inf"),
    float("-inf"),
    float("nan"),
    "1999999999",
    "not a number",
    True,
    False,
    [1],
    {"n": 1},
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda value: repr(value)[:12])
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_odd_time_claims_are_a_401_never_a_500(
    client: httpx.AsyncClient, settings: Settings, claim: str, value: Any
) -> None:
    await assert_refused_everywhere(client, signed(settings, **{claim: value}))


async def test_exp_before_iat_is_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    now = int(time.time())
    await assert_refused_everywhere(client, signed(settings, iat=now, exp=now - 1))


async def test_a_null_exp_or_iat_is_a_missing_claim(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    header = b64url(json.dumps({"alg": "HS256"}).encode())
    for claim in ("exp", "iat"):
        token = signed(settings)
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        claims[claim] = None
        body = b64url(json.dumps(claims).encode())
        assert settings.jwt_secret
        mac = hmac.new(settings.jwt_secret.encode(), f"{header}.{body}".encode(), hashlib.sha256)
        await assert_refused_everywhere(client, f"{header}.{body}.{b64url(mac.digest())}")


# --- org and sub ------------------------------------------------------------------------------

BAD_ORGS = [
    "",
    "a" * 129,
    "a" * 256,
    "acme\x00",
    "\x00",
    "ac\nme",
    "acme\t",
    "acme\u2028",
    "\u00a0acme",
    12,
    ["acme"],
]
BAD_SUBS = ["", "s" * 257, "emp\x00-1", "emp\r\n1", "\x7f", 12, None]


@pytest.mark.parametrize("org", BAD_ORGS, ids=repr)
async def test_unstorable_orgs_are_refused_before_the_database(
    client: httpx.AsyncClient, settings: Settings, org: Any
) -> None:
    await assert_refused_everywhere(client, signed(settings, org=org))


@pytest.mark.parametrize("sub", BAD_SUBS, ids=repr)
async def test_unprintable_or_long_subs_are_refused(
    client: httpx.AsyncClient, settings: Settings, sub: Any
) -> None:
    await assert_refused_everywhere(client, signed(settings, sub=sub))


@pytest.mark.parametrize(
    ("org", "sub"), [("o" * 128, "s" * 256), ("Ünïcødé org", "user@example.com"), ("a", "b")]
)
async def test_the_longest_and_unicode_claims_still_work(
    client: httpx.AsyncClient, settings: Settings, org: str, sub: str
) -> None:
    headers = {"Authorization": f"Bearer {signed(settings, org=org, sub=sub)}"}
    assert (await client.get(READ, headers=headers)).status_code == 200
    assert (await client.post(WRITE, json=FEEDBACK, headers=headers)).status_code == 201


@pytest.mark.parametrize("department", ["Sales\x00", "d" * 300, "HR\n"])
async def test_unstorable_optional_claims_are_dropped_not_a_500(
    client: httpx.AsyncClient, settings: Settings, department: str
) -> None:
    """``department`` reaches a query (suggestions rank it last): an odd one is ignored."""
    headers = {"Authorization": f"Bearer {signed(settings, department=department)}"}
    assert (await client.get("/v1/allies/suggestions", headers=headers)).status_code == 200
