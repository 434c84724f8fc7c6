"""The committed contract is the app's contract, and every operation is fully described.

``allyapi openapi`` regenerates ``openapi/openapi.json``; these tests fail when someone
changes a route without regenerating it, or adds an operation an integrator cannot use
(no id, no summary, no tag, no security, or error bodies that are not problem details).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from allyapi.ops.contract import CONTRACT_PATH, openapi_document, render

ROOT = Path(__file__).resolve().parents[2]
# Open to probes; /metrics takes its own bearer token (ALLYAPI_METRICS_TOKEN), not a JWT.
OPERATIONS_PATHS = {"/healthz", "/readyz"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in sorted(document["paths"].items())
        for method, operation in sorted(item.items())
        if method in METHODS
    ]


def test_committed_contract_matches_the_app(document: dict[str, Any]) -> None:
    committed = (ROOT / CONTRACT_PATH).read_text(encoding="utf-8")
    assert committed == render(document), (
        "openapi/openapi.json is out of date: run `.venv/bin/allyapi openapi` and commit it"
    )


def test_contract_has_operations(document: dict[str, Any]) -> None:
    paths = {path for path, _, _ in operations(document)}
    assert paths >= OPERATIONS_PATHS
    assert any(path.startswith("/v1/") for path in paths)


def test_every_operation_is_described(document: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}: {field}"
        for path, method, operation in operations(document)
        for field in ("operationId", "summary", "tags")
        if not operation.get(field)
    ]
    assert missing == []


def test_api_operations_need_the_bearer_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    bearer = {
        name
        for name, scheme in schemes.items()
        if scheme.get("type") == "http" and scheme.get("scheme") == "bearer"
    }
    assert bearer, "no HTTP bearer security scheme"
    for path, method, operation in operations(document):
        requirements = operation.get("security") or []
        if path in OPERATIONS_PATHS:
            assert requirements == [], f"{method.upper()} {path} is an open operations endpoint"
            continue
        names = {name for requirement in requirements for name in requirement}
        assert names, f"{method.upper()} {path} has no security"
        assert names <= bearer, f"{method.upper()} {path} lacks bearer security"
        assert {"401", "403"} <= set(operation["responses"]), f"{method.upper()} {path}"


def test_error_responses_are_problem_details(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        responses: dict[str, Any] = operation["responses"]
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        assert "500" in errors, f"{method.upper()} {path} does not document 500"
        if path == "/readyz":
            # Not ready is a readiness document, not an error: probes read its fields.
            errors.pop("503")
        for code, response in errors.items():
            content = response.get("content", {})
            where = f"{method.upper()} {path} {code}"
            if path.startswith("/scim/"):  # SCIM's own error documents (docs/scim.md)
                scim_error = {"schema": {"$ref": "#/components/schemas/ScimError"}}
                assert content == {"application/scim+json": scim_error}, where
                continue
            assert list(content) == ["application/problem+json"], where
            assert _is_problem(document, content["application/problem+json"]["schema"]), where
            assert response.get("description"), where


def _is_problem(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """The Problem schema, or one that extends it with extension members (RFC 9457 §3.2):
    every Problem member, typed the same, and the same required ones."""
    if schema == {"$ref": PROBLEM_REF}:
        return True
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    extended = schemas.get(str(schema.get("$ref", "")).rsplit("/", 1)[-1], {})
    members = extended.get("properties", {})

    def shape(member: dict[str, Any] | None) -> dict[str, Any]:
        return {key: value for key, value in (member or {}).items() if key != "default"}

    same = all(shape(members.get(n)) == shape(v) for n, v in problem["properties"].items())
    return same and (set(extended.get("required", [])) == set(problem.get("required", [])))


def test_operations_that_take_input_document_422(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if operation.get("parameters") or "requestBody" in operation:
            # SCIM answers invalid input with its own 400 (scimType invalidValue).
            invalid = "400" if path.startswith("/scim/") else "422"
            assert invalid in operation["responses"], f"{method.upper()} {path}"


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = Counter(operation.get("operationId") for _, _, operation in operations(document))
    assert [name for name, count in ids.items() if count > 1] == []


def test_readiness_documents_both_outcomes(document: dict[str, Any]) -> None:
    responses = document["paths"]["/readyz"]["get"]["responses"]
    for code in ("200", "503"):
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Readiness"}


def test_generation_ignores_the_environment(
    document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLYAPI_DOCS_ENABLED", "false")
    monkeypatch.setenv("ALLYAPI_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("ALLYAPI_ENV", "production")
    assert render(openapi_document()) == render(document)
