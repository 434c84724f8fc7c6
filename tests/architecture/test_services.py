"""One way to get a service (ARCHITECTURE.md): a route names an ``Annotated`` alias from its
domain's ``deps.py``; it never builds a service, a repository or a session itself, and never
calls a service module's functions."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "allyapi"
ROUTERS = sorted(SRC.glob("*/router.py"))


def _offences(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(".service"):
            # Classes only, for annotations (``Shape``, ``ScimService``); no functions.
            found += [
                f"imports {alias.name} from {node.module}"
                for alias in node.names
                if alias.name[:1].islower()
            ]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name.endswith(("Service", "Repository")) or name in {"AsyncSession"}:
                found.append(f"builds {name}(...)")
    return found


def test_routers_are_found() -> None:
    assert len(ROUTERS) >= 10


def test_routes_get_services_only_through_deps_aliases() -> None:
    offences = {
        path.relative_to(SRC).as_posix(): found
        for path in ROUTERS
        if (found := _offences(path.read_text()))
    }
    assert offences == {}


def test_the_check_sees_inline_construction_and_module_functions() -> None:
    source = (
        "from allyapi.audit.service import audit_page\n"
        "async def route(session):\n"
        "    return await AllyService(session, None).get()\n"
    )
    assert _offences(source) == [
        "imports audit_page from allyapi.audit.service",
        "builds AllyService(...)",
    ]
