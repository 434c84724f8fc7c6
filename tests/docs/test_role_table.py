"""The role table in docs/integration-guide.md is the authorization matrix, cell for cell.

The guide's "Who may call what" table is parsed and compared with ``MATRIX`` in
tests/security/test_authz_matrix.py (which is itself checked against the route table and
against the running app): a role rule that changes without the guide, or a guide edited by
hand, fails here. On failure the expected table is printed, ready to paste.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.security.test_authz_matrix import CALLERS, MATRIX, OK, F, N

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "integration-guide.md"
START, END = "<!-- authz-table -->", "<!-- /authz-table -->"
# Every caller but the anonymous one (always 401), in the matrix's order.
COLUMNS = [caller for caller in CALLERS if caller != "none"]
HEADINGS = {
    "employee": "employee",
    "ally": "the ally concerned",
    "other_ally": "another ally",
    "coordinator": "coordinator",
    "analyst": "analyst",
    "integration": "integration",
    "other_org": "other organisation",
}
CELL = {OK: "yes", F: "403", N: "404"}


def render() -> str:
    lines = [
        "| operation | " + " | ".join(HEADINGS[c] for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for (method, path), cells in MATRIX.items():
        row = " | ".join(CELL.get(cells[c], str(cells[c])) for c in COLUMNS)
        lines.append(f"| `{method} {path}` | {row} |")
    return "\n".join(lines)


def parse(markdown: str) -> dict[tuple[str, str], dict[str, int]]:
    assert START in markdown, f"the guide lost its {START} marker"
    assert END in markdown, f"the guide lost its {END} marker"
    table = markdown.split(START, 1)[1].split(END, 1)[0]
    by_cell = {text: status for status, text in CELL.items()}
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for line in table.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+) (\S+)`", cells[0])
        assert match, f"not an operation: {cells[0]!r}"
        values = [by_cell.get(cell, int(cell) if cell.isdigit() else -1) for cell in cells[1:]]
        rows[(match[1], match[2])] = {"none": 401, **dict(zip(COLUMNS, values, strict=True))}
    return rows


def test_the_guides_role_table_is_the_authorization_matrix() -> None:
    documented = parse(GUIDE.read_text(encoding="utf-8"))
    assert documented == MATRIX, (
        "docs/integration-guide.md role table drifted; expected:\n" + render()
    )
