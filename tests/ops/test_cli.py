"""``allyapi`` CLI: token, migrate, seed --demo, serve's banner, openapi --check.

Each test runs the real ``main`` in an empty folder with its own data dir, so it neither
reads a developer's ``.env`` nor touches their embedded database.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from allyapi.cli import main
from allyapi.core.auth.tokens import TokenVerifier
from allyapi.core.db.migrations import head_revision
from allyapi.core.settings import load_settings


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("ALLYAPI_") and not name.startswith("ALLYAPI_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ALLYAPI_ENV", "development")
    monkeypatch.setenv("ALLYAPI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ALLYAPI_SECRETS_DIR", str(tmp_path / "secrets"))
    return tmp_path


def run(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    assert isinstance(code, int)
    return code


def test_token_is_accepted_by_the_verifier(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("token", "--sub", "alice", "--org", "acme", "--roles", "employee,coordinator") == 0
    token = capsys.readouterr().out.strip()
    principal = TokenVerifier(load_settings()).verify(token)
    assert principal.sub == "alice"
    assert principal.org == "acme"
    assert principal.roles == {"employee", "coordinator"}


def test_token_refuses_unknown_roles(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("token", "--sub", "alice", "--org", "acme", "--roles", "admin") == 2
    assert capsys.readouterr().out == ""


def test_migrate_brings_an_empty_embedded_database_to_head(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("migrate") == 0
    assert "schema is at head" in capsys.readouterr().out
    with sqlite3.connect(workdir / "data" / "allyapi.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(),)
        ]
    assert run("migrate") == 0  # again: nothing to do, no error


def _demo_allies(workdir: Path) -> int:
    with sqlite3.connect(workdir / "data" / "allyapi.db") as db:
        count: int = db.execute("SELECT count(*) FROM allies WHERE org_id = 'demo'").fetchone()[0]
    return count


def test_seed_demo_is_idempotent(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("seed", "--demo") == 0
    first = capsys.readouterr().out
    assert "demo organisation seeded" in first
    allies = _demo_allies(workdir)
    assert allies > 0

    assert run("seed", "--demo") == 0
    second = capsys.readouterr().out
    assert "already present" in second
    assert _demo_allies(workdir) == allies
    for role in ("employee", "coordinator", "analyst", "integration"):
        assert role in second


def test_serve_prints_tokens_and_docs_before_the_server_starts(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    printed_before_start: list[str] = []

    def fake_run(app: str, **options: Any) -> None:
        printed_before_start.append(capsys.readouterr().out)
        assert options["port"] == 8123
        assert options["access_log"] is False

    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert run("serve", "--demo", "--port", "8123") == 0
    banner = printed_before_start[0]
    assert "Docs: http://127.0.0.1:8123/docs" in banner
    tokens = [line.split()[1] for line in banner.splitlines() if line.startswith("  employee ")]
    principal = TokenVerifier(load_settings()).verify(tokens[0])
    assert principal.org == "demo"
    assert principal.roles == {"employee"}


def test_openapi_check_detects_a_stale_file(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = workdir / "contract.json"
    assert run("openapi", "--output", str(target)) == 0
    assert run("openapi", "--check", "--output", str(target)) == 0
    target.write_text(target.read_text().replace('"allyapi"', '"renamed"', 1))
    assert run("openapi", "--check", "--output", str(target)) == 1
    assert "out of date" in capsys.readouterr().err
    assert not (workdir / ".allyapi").exists()  # no dev secrets made for a contract


def test_production_refuses_generated_secrets_without_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLYAPI_ENV", "production")
    assert run("serve") == 2
    err = capsys.readouterr().err
    assert "production refuses to start" in err
    assert "ALLYAPI_PSEUDONYM_KEY" in err
    assert "Traceback" not in err
    assert not (workdir / "data").exists()  # nothing generated


def test_production_refuses_to_serve_metrics_without_a_token(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "ALLYAPI_ENV": "production",
        "ALLYAPI_DATABASE_URL": "postgresql+asyncpg://allyapi@127.0.0.1:9/allyapi",
        "ALLYAPI_JWT_SECRET": "j" * 48,
        "ALLYAPI_PSEUDONYM_KEY": "p" * 48,
        "ALLYAPI_DATA_KEYS": "k1:" + "A" * 43 + "=",
    }.items():
        monkeypatch.setenv(name, value)
    assert run("serve") == 2
    err = capsys.readouterr().err
    assert "production refuses to start without ALLYAPI_METRICS_TOKEN" in err
    assert "Traceback" not in err


def test_serve_refuses_several_workers_on_sqlite(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One SQLite file has one writer at a time: several processes queueing on it answered 503
    under load. Refused before anything is migrated, seeded or served."""

    def must_not_run(*args: Any, **options: Any) -> None:
        raise AssertionError("uvicorn must not start")

    monkeypatch.setattr(uvicorn, "run", must_not_run)
    assert run("serve", "--workers", "2") == 2
    err = capsys.readouterr().err
    assert "--workers above 1 needs PostgreSQL" in err
    assert not (workdir / "data" / "allyapi.db").exists()  # not even migrated
    assert run("serve", "--workers", "0") == 2


def test_serve_gives_its_workers_a_fresh_metrics_directory(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prometheus_client needs the directory emptied between runs: a file of an earlier run
    would be summed into this run's counters."""
    given = workdir / "metrics"
    given.mkdir()
    (given / "counter_999999.db").write_bytes(b"stale")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    during: list[list[str]] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda *a, **k: during.append(sorted(p.name for p in given.iterdir()))
    )
    assert run("serve", "--no-migrate") == 0
    assert during == [[]]

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    private: list[str] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda *a, **k: private.append(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    )
    assert run("serve", "--no-migrate") == 0
    assert private
    assert not Path(private[0]).exists()  # removed when the server stopped
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_several_issuers_without_orgs_stop_the_start_with_the_reason(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The development issuer and one identity provider: each must list its orgs."""
    idp = {"issuer": "https://idp.example", "algorithms": ["RS256"], "jwks_url": "https://i/k"}
    monkeypatch.setenv("ALLYAPI_OIDC_ISSUERS", json.dumps([{**idp, "orgs": ["acme"]}]))
    assert run("serve") == 2
    err = capsys.readouterr().err
    assert "each must list the orgs" in err
    assert "ALLYAPI_JWT_ORGS" in err
    assert "Traceback" not in err
    monkeypatch.setenv("ALLYAPI_JWT_ORGS", "acme,demo")
    assert run("token", "--sub", "alice", "--org", "acme", "--roles", "employee") == 0


def test_token_refuses_a_lifetime_over_the_maximum_or_a_foreign_org(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("token", "--sub", "a", "--org", "acme", "--roles", "employee", "--ttl", "86401") == 2
    assert "ALLYAPI_JWT_MAX_LIFETIME_SECONDS" in capsys.readouterr().err
    monkeypatch.setenv("ALLYAPI_JWT_ORGS", "acme")
    assert run("token", "--sub", "a", "--org", "globex", "--roles", "employee") == 2
    assert "ALLYAPI_JWT_ORGS" in capsys.readouterr().err
