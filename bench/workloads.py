"""What the benchmark sends: the same requests to ours and to the baseline, for wrk and loader.py.

Every request carries both our bearer token and the baseline's ``X-Bench-Org``/``X-Bench-Sub``
headers (each server ignores the other's), so one script loads both servers identically.

Creates rotate through ``REQUESTERS`` distinct requesters (one token each) and through the
org's allies, with a unique Idempotency-Key per request: the per-requester cap and write rate
limit are configured high for the run as well (see run.py), so what is measured is the create
path, not 429s.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loader import RequestMaker, http_request

from allyapi.core.auth.tokens import mint_dev_token
from allyapi.core.settings import Settings

REQUESTERS = 2000
CREATE_BODY = {
    "topic": "stress",
    "urgency": "normal",
    "language": "en",
    "preferred_channel": "email",
    "message": "I would like to talk to someone about my workload and how it affects my sleep.",
    "contact_detail": "me@example.com",
    "alias": "Jay",
}
CREATE_PATH = "/v1/contact-requests"


@dataclass(frozen=True)
class Workload:
    """One GET endpoint (fixed headers) or the create endpoint (rotating)."""

    name: str
    method: str
    path: str
    org: str
    headers: dict[str, str]
    tokens: Sequence[tuple[str, str]] = ()  # (sub, token) for creates
    allies: Sequence[str] = ()


def reader_headers(settings: Settings, org: str) -> dict[str, str]:
    token = mint_dev_token(settings, sub="bench-reader", org=org, roles=["employee"])
    return {"Authorization": f"Bearer {token}", "X-Bench-Org": org, "X-Bench-Sub": "bench-reader"}


def directory(settings: Settings, name: str, org: str, path: str) -> Workload:
    return Workload(name, "GET", path, org, reader_headers(settings, org))


def create(settings: Settings, org: str, allies: Sequence[str], requesters: int) -> Workload:
    tokens = [
        (sub, mint_dev_token(settings, sub=sub, org=org, roles=["employee"]))
        for sub in (f"bench-requester-{i}" for i in range(requesters))
    ]
    return Workload("create", "POST", CREATE_PATH, org, {}, tokens, allies)


def request_maker(load: Workload, run_id: str) -> RequestMaker:
    """Request *i* as bytes, for loader.py."""
    if load.method == "GET":
        raw = http_request("GET", load.path, load.headers)
        return lambda _: raw

    def make(i: int) -> bytes:
        sub, token = load.tokens[i % len(load.tokens)]
        body = json.dumps({"ally_id": load.allies[i % len(load.allies)], **CREATE_BODY})
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Bench-Org": load.org,
            "X-Bench-Sub": sub,
            "Idempotency-Key": f"{run_id}-{i}",
            "Content-Type": "application/json",
        }
        return http_request("POST", load.path, headers, body.encode())

    return make


def _lua_list(values: Sequence[str]) -> str:
    return "{" + ",".join(json.dumps(value) for value in values) + "}"


def lua_script(load: Workload, directory_path: Path) -> Path:
    """A wrk script for the workload, written into ``directory_path``."""
    path = directory_path / f"{load.name}-{uuid.uuid4().hex[:8]}.lua"
    if load.method == "GET":
        lines = [f"wrk.method = {json.dumps(load.method)}", f"wrk.path = {json.dumps(load.path)}"]
        lines += [
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in load.headers.items()
        ]
        path.write_text("\n".join(lines) + "\n")
        return path
    template = json.dumps({"ally_id": "ALLY", **CREATE_BODY})
    before, _, after = template.partition("ALLY")
    path.write_text(
        LUA_CREATE.replace("@SUBS@", _lua_list([sub for sub, _ in load.tokens]))
        .replace("@TOKENS@", _lua_list([token for _, token in load.tokens]))
        .replace("@ALLIES@", _lua_list(load.allies))
        .replace("@ORG@", json.dumps(load.org))
        .replace("@RUN@", json.dumps(uuid.uuid4().hex))
        .replace("@BEFORE@", json.dumps(before))
        .replace("@AFTER@", json.dumps(after))
        .replace("@PATH@", json.dumps(load.path))
    )
    return path


# Each wrk thread has its own Lua state: ``setup`` numbers the threads so Idempotency-Keys
# (run id, thread, counter) never repeat, and the threads start at different requesters;
# ``init`` makes the run id new for each wrk run of the same script.
LUA_CREATE = """
local subs, tokens, allies = @SUBS@, @TOKENS@, @ALLIES@
local org, run, before, after, path = @ORG@, @RUN@, @BEFORE@, @AFTER@, @PATH@
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
-- One script serves the warm-up and every round: each wrk run (and thread) makes its own
-- run id, or a later run would repeat the keys of an earlier one and be answered as replays.
function init(args)
  math.randomseed(os.time() * 1000 + tid)
  run = run .. "-" .. os.time() .. "-" .. math.random(1, 1073741824)
end
function request()
  counter = counter + 1
  local n = counter + tid * 7919
  local i = n % #tokens + 1
  local body = before .. allies[n % #allies + 1] .. after
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[i],
    ["X-Bench-Org"] = org,
    ["X-Bench-Sub"] = subs[i],
    ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter,
  }, body)
end
"""
