"""scim2-tester (RFC 7643/7644 compliance checks) against a live ``allyapi serve``.

allyapi never creates a person by SCIM: ``POST /Users`` links the ally profile of the person
named by ``userName`` (docs/scim.md). So the client the tester drives does first what that
person does in real life, volunteering through ``POST /v1/allies`` with their own token, and
then lets the tester's POST through. Every check of what allyapi supports must pass; what it
does not support (Groups, bulk, sort, etag, changePassword) is declared unsupported by the
ServiceProviderConfig and the ResourceTypes, and the tester does not run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from scim2_client import BaseSyncSCIMClient
from scim2_models import Resource
from scim2_tester import Status, check_server

from allyapi.core.auth.tokens import mint_dev_token
from allyapi.core.settings import load_settings
from tests.live import LiveServer, live_server

ORG = "scim-check"
PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED}


class AllyapiSCIMClient(BaseSyncSCIMClient):
    """scim2-client over httpx (the project's HTTP client), volunteering before each POST."""

    def __init__(self, http: httpx.Client, volunteer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = http
        self._volunteer = volunteer

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url = self.client.build_request("GET", endpoint).url
        return url.host == self.client.base_url.host and url.path.startswith("/scim/v2")

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)

    def create(self, *args: Any, **kwargs: Any) -> Any:
        target = args[1] if len(args) > 1 else kwargs.get("resource", args[0] if args else None)
        user_name = getattr(target, "user_name", None)
        if isinstance(target, Resource) and user_name:
            self._volunteer(user_name)
        return super().create(*args, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("scim")) as running:
        yield running


def _token(server: LiveServer, sub: str, role: str) -> str:
    # The server's HOME is its data dir: its generated secrets are under it.
    settings = load_settings(
        data_dir=server.data_dir, env="development", secrets_dir=server.data_dir / ".config/allyapi"
    )
    return mint_dev_token(settings, sub=sub, org=ORG, roles=[role])


def test_scim2_tester_finds_no_failure(server: LiveServer) -> None:
    integration = {"Authorization": f"Bearer {_token(server, 'idp', 'integration')}"}

    def volunteer(user_name: str) -> None:
        token = _token(server, user_name, "employee")
        response = httpx.post(
            f"{server.base}/v1/allies",
            json={"display_name": "Checked Ally"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code in (201, 409), response.text

    with httpx.Client(base_url=f"{server.base}/scim/v2", headers=integration) as http:
        client = AllyapiSCIMClient(http, volunteer)
        results = check_server(client, raise_exceptions=False)
    report = [
        f"{result.status.name} {result.resource_type or ''} {result.title}: {result.reason}"
        for result in results
        if result.status not in PASSING
    ]
    assert results, "the tester ran nothing"
    assert report == [], "\n".join(report)
    titles = {result.title for result in results if result.status == Status.SUCCESS}
    assert len(titles) >= 10, titles
