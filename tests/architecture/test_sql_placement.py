"""SQL lives in repositories (ARCHITECTURE.md, "How SQL is written"): the check CI runs."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "sql-outside-repositories"


def test_no_sql_outside_repositories() -> None:
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_the_pattern_tells_sql_from_methods_of_the_same_name() -> None:
    sql = runpy.run_path(str(SCRIPT))["SQL"]
    for line in (
        "rows = await session.execute(query)",
        "query = sa.select(Ally.id)",
        "await session.scalars(select(Topic))",
        'live.execute("VACUUM INTO ?", (path,))',
        "insert.on_conflict_do_nothing()",
    ):
        assert sql.search(line), line
    for line in (
        "async def update(self, org_id: str) -> None:",
        "await self.repo.delete(resource)",
        "headers.update(extra)",
        "@router.delete(",
    ):
        assert not sql.search(line), line


def test_a_statement_outside_a_repository_is_an_offence(tmp_path: Path) -> None:
    check = runpy.run_path(str(SCRIPT))
    module = tmp_path / "service.py"
    module.write_text("rows = await self.session.execute(select(Ally))\n")
    assert check["offences"](module)
    assert not check["allowed"]("allies/service.py")
    assert not check["allowed"]("jobs/webhooks.py")
    assert check["allowed"]("allies/repository.py")
    assert check["allowed"]("allies/listing_repository.py")
    assert check["allowed"]("core/db/backup.py")
