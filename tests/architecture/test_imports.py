"""The packages import each other in layers, and the domains form a DAG (ARCHITECTURE.md).

Layers, lowest first: ``core`` (no domain); the domain packages; ``workflows`` (rules that
join two domains); ``jobs``; the app. A module imports only its own layer or lower ones, with
one exception: a domain's HTTP edge (``router.py``, ``deps.py``) may call a workflow, and so
may ``scim`` (deprovisioning retires allies through the ally-availability workflow).

Between domains, every import goes one way (no cycle), read from the source with ``ast``.
Table models are the shared schema (``tables.py`` imports them all), so importing another
domain's ``models`` module is not an edge: the rule is about services, repositories, queries
and schemas.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "allyapi"
ABOVE_DOMAINS = ("workflows", "jobs", "ops", "app", "cli", "maintenance", "demo")
NOT_DOMAINS = frozenset({"core", *ABOVE_DOMAINS})
HTTP_EDGE = frozenset({"router.py", "deps.py"})
# SCIM deprovisioning is the ally-availability workflow's caller (retire, hand back, announce).
WORKFLOW_CALLERS = frozenset({"scim"})


def domains() -> list[str]:
    return sorted(
        path.name
        for path in SRC.iterdir()
        if (path / "__init__.py").exists() and path.name not in NOT_DOMAINS
    )


def imports_of(path: Path) -> Iterator[list[str]]:
    """Every ``allyapi.…`` module the file imports, split into its parts after ``allyapi``."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "allyapi" and len(parts) > 1:
                yield parts[1:]


def domain_edges() -> dict[str, dict[str, set[str]]]:
    """domain → the other domains it imports → the files that do (models excluded)."""
    known = set(domains())
    edges: dict[str, dict[str, set[str]]] = {name: {} for name in known}
    for domain in known:
        for path in (SRC / domain).rglob("*.py"):
            for parts in imports_of(path):
                target = parts[0]
                if target in known and target != domain and parts[1:2] != ["models"]:
                    edges[domain].setdefault(target, set()).add(path.name)
    return edges


def find_cycle(edges: dict[str, dict[str, set[str]]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_domains_are_found() -> None:
    assert {"allies", "contact_requests", "training", "reports", "aggregates"} <= set(domains())


def test_domain_packages_form_a_dag() -> None:
    edges = domain_edges()
    cycle = find_cycle(edges)
    assert cycle is None, "a cycle between domain packages: " + " -> ".join(
        f"{a} ({', '.join(sorted(edges[a][b]))})" for a, b in itertools.pairwise(cycle)
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b": {"x.py"}}, "b": {"c": {"y.py"}}, "c": {"a": {"z.py"}}}) == [
        "a",
        "b",
        "c",
        "a",
    ]
    assert find_cycle({"a": {"b": {"x.py"}}, "b": {}}) is None


def test_each_layer_imports_only_itself_or_lower_layers() -> None:
    known = set(domains())
    offenders = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC)
        top = relative.parts[0].removesuffix(".py")
        for parts in imports_of(path):
            target = parts[0]
            if top == "core" and target != "core":
                offenders.append(f"{relative}: core imports allyapi.{'.'.join(parts)}")
            elif top in known and target in ABOVE_DOMAINS:
                edge = path.name in HTTP_EDGE or top in WORKFLOW_CALLERS
                if not (target == "workflows" and edge):
                    offenders.append(f"{relative}: a domain imports allyapi.{'.'.join(parts)}")
            elif top == "workflows" and target in ("jobs", "app", "ops"):
                offenders.append(f"{relative}: a workflow imports allyapi.{'.'.join(parts)}")
    assert not offenders, "\n".join(sorted(offenders))
