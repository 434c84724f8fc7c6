"""``allyapi backup PATH``: a consistent copy of the embedded SQLite database.

Copying ``allyapi.db`` while a server runs loses acknowledged writes: in WAL mode the newest
commits live in ``allyapi.db-wal`` until a checkpoint, and a file copy taken mid-write can be
torn. ``VACUUM INTO`` reads the database through SQLite, in one read transaction: it sees
exactly the commits made before it started (those still in the WAL included), never blocks
the writers (WAL readers do not), and writes a compact new file that holds no free pages, so
no leftover of erased rows travels into the backup. The copy is switched to the rollback
journal (one self-contained file), checked, made readable by its owner only, and moved into
place in one rename.

PostgreSQL is backed up with its own tools (``pg_dump``); docs/operations.md has the steps.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

BUSY_TIMEOUT_SECONDS = 30


class BackupRefused(Exception):
    """Nothing was written; the message says why and what to do instead."""


def backup_sqlite(database_url: str, target: Path) -> Path:
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        raise BackupRefused(
            "allyapi backup copies the embedded SQLite database; back up PostgreSQL with "
            "pg_dump --format=custom (docs/operations.md, Backup and restore)"
        )
    source = Path(url.database or "")
    if not source.is_file():
        raise BackupRefused(f"no database at {source}")
    target = target.resolve()
    if target.exists():
        raise BackupRefused(f"{target} exists; give a new file name")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        _vacuum_into(source, partial)
        _seal(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _vacuum_into(source: Path, partial: Path) -> None:
    # Read-only URI: the backup can never write to the live database.
    with contextlib.closing(
        sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    ) as live:
        live.execute("VACUUM INTO ?", (str(partial),))


def _seal(partial: Path) -> None:
    with contextlib.closing(sqlite3.connect(partial)) as copy:
        copy.execute("PRAGMA journal_mode=DELETE")
        (verdict,) = copy.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise BackupRefused(f"the copy failed its integrity check: {verdict}")
    os.chmod(partial, 0o600)
    with partial.open("rb") as written:
        os.fsync(written.fileno())
