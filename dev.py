#!/usr/bin/env python3
"""The two-command quick start: ``python3 dev.py serve`` and ``python3 dev.py test``.

Standard library only, so it runs on a fresh machine with nothing but Python >= 3.11. Both
commands make ``.venv`` when it is missing and install the project pinned by
``constraints.txt``; the install is skipped while a stamp in ``.venv`` still matches the hash
of ``pyproject.toml`` + ``constraints.txt``, so repeated runs start at once.

    python3 dev.py serve [allyapi serve options]   # demo org on embedded SQLite, tokens printed
    python3 dev.py test  [pytest options]          # ruff check and format, mypy, then pytest
    python3 dev.py install                          # only (re)install the environment
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".allyapi-install-stamp"
INPUTS = ("pyproject.toml", "constraints.txt")
LINT_PATHS = ("src", "tests", "alembic", "dev.py")
USAGE = "usage: python3 dev.py {serve|test|install} [extra arguments]"


def _bin(name: str) -> Path:
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / folder / f"{name}{suffix}"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _run(*command: str | Path, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(part) for part in command), flush=True)
    # Our own fixed commands inside our own venv: nothing here comes from untrusted input.
    return subprocess.call([str(part) for part in command], cwd=ROOT, env=env)  # noqa: S603


def ensure_installed() -> None:
    """Create the venv and install the pinned project unless the stamp says it is current."""
    fingerprint = _fingerprint()
    python = _bin("python")
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        return
    if not python.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            shutil.rmtree(VENV, ignore_errors=True)  # a half-made venv would be taken as ready
            sys.exit(
                f"dev.py: could not create {VENV} ({exc}). On Debian/Ubuntu the venv module "
                "is a separate package: apt-get install python3-venv"
            )
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    code = _run(
        python,
        *("-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[test]"),
        env=env,
    )
    if code != 0:
        sys.exit(f"dev.py: installing the project failed (pip exit code {code})")
    STAMP.write_text(fingerprint + "\n")


def serve(extra: list[str]) -> int:
    try:
        return _run(_bin("allyapi"), "serve", "--demo", *extra)
    except KeyboardInterrupt:  # Ctrl-C ends the server; no traceback for that
        return 0


def test(extra: list[str]) -> int:
    steps: list[tuple[str | Path, ...]] = [
        (_bin("ruff"), "check", *LINT_PATHS),
        (_bin("ruff"), "format", "--check", *LINT_PATHS),
        (_bin("mypy"),),
        (_bin("python"), "-m", "pytest", *extra),
    ]
    for step in steps:
        code = _run(*step)
        if code != 0:
            # pytest's 5 ("no tests ran") is a failure too: it passes through as non-zero.
            print(f"dev.py: step failed with exit code {code}", file=sys.stderr)
            return code
    return 0


def main(argv: list[str]) -> int:
    # A clear message on an older Python rather than a confusing failure deep in pip.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit("dev.py: allyapi needs Python >= 3.11")
    if not argv or argv[0] not in {"serve", "test", "install"}:
        print(USAGE, file=sys.stderr)
        return 2
    command, extra = argv[0], argv[1:]
    ensure_installed()
    if command == "serve":
        return serve(extra)
    if command == "test":
        return test(extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
