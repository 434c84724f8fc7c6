"""Prints the example counts of the property-based tests (tests/security/examples.py)."""

from __future__ import annotations

import pytest

from tests.security.examples import RUN


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RUN:
        return
    terminalreporter.write_sep("-", "generated examples run")
    for name, n in sorted(RUN.items()):
        terminalreporter.write_line(f"{name}: {n}")
    terminalreporter.write_line(f"total: {sum(RUN.values())}")
