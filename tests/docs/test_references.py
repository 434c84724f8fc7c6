"""The repository explains itself: it cites only what a clone contains.

- No tracked file under src, tests, docs, bench, alembic or .ci, nor README.md, SECURITY.md,
  ARCHITECTURE.md, the Dockerfile, dev.py or pyproject.toml, cites a document that lives outside the repository: a specification by
  its name or section sign, or a tracker's issue by number. Product rules are written in
  docs/ and cited from there. RFC sections ("RFC 9457 §3.2") are fine.
- A file that names a privacy invariant by number (P1…P9) also names docs/privacy.md, the
  page that defines them.
- Every relative link in README.md, ARCHITECTURE.md, SECURITY.md and docs/*.md reaches a file
  that exists (and, for a ``#fragment`` into a Markdown file, a heading that exists), and so
  does every repository path a doc quotes in backticks (``src/…``, ``tests/…``, …).

The patterns are assembled from pieces so this file does not match them itself.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED_DIRS = ("src", "tests", "docs", "bench", "alembic", ".ci")
SCANNED_FILES = (
    "README.md",
    "SECURITY.md",
    "ARCHITECTURE.md",
    "Dockerfile",
    "dev.py",
    "pyproject.toml",
)
LINKED_DOCS = ("README.md", "ARCHITECTURE.md", "SECURITY.md")
SKIPPED_PARTS = frozenset({"__pycache__", "node_modules", ".pytest_cache", ".venv"})

SECTION = "\u00a7"
OUTSIDE = [
    ("the specification by name", re.compile(r"\b" + "SP" + r"EC\b")),
    ("the specification by name", re.compile(r"product " + "spec" + r"ification", re.I)),
    ("the specification's numbering", re.compile(r"\bP6" + r"\+")),
    ("an issue by number", re.compile(r"\b" + "[Ii]ss" + r"ue\s*#?\d+")),
]
# The section sign is fine only as part of an RFC citation: "RFC 9110 §15.5.6".
RFC_BEFORE = re.compile(r"RFC\s*\d+\s*$")
INVARIANT = re.compile(r"\bP[1-9]\b")
PRIVACY_PAGE = "privacy.md"


@cache
def scanned_files() -> list[Path]:
    """Tracked files (a checkout), else every file under the scanned paths (an sdist)."""
    try:
        listed = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", "ls-files", "-z", "--", *SCANNED_DIRS, *SCANNED_FILES],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        paths = [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        paths = [ROOT / name for name in SCANNED_FILES]
        for folder in SCANNED_DIRS:
            paths += (path for path in (ROOT / folder).rglob("*") if path.is_file())
    return sorted(path for path in paths if path.is_file() and not SKIPPED_PARTS & set(path.parts))


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # binary


def outside_references(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for what, pattern in OUTSIDE:
            if pattern.search(line):
                found.append(f"line {number}: {what}: {line.strip()[:120]}")
        for match in re.finditer(SECTION, line):
            if not RFC_BEFORE.search(line[: match.start()]):
                found.append(
                    f"line {number}: a section sign outside an RFC citation: {line.strip()[:120]}"
                )
    return found


def test_the_scan_sees_the_repository() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in scanned_files()}
    assert {"README.md", "ARCHITECTURE.md", "src/allyapi/app.py", "docs/privacy.md"} <= names


def test_no_file_cites_a_document_outside_the_repository() -> None:
    offenders = {}
    for path in scanned_files():
        text = text_of(path)
        if text is not None and (found := outside_references(text)):
            offenders[path.relative_to(ROOT).as_posix()] = found
    assert not offenders, "cite docs/ instead:\n" + "\n".join(
        f"{name}: {line}" for name, lines in offenders.items() for line in lines
    )


def test_the_patterns_catch_what_they_are_for() -> None:
    cited = ["(" + "SP" + "EC " + SECTION + "3)", "issue " + "6", "Issue #" + "8", "P6" + "+"]
    cited.append(SECTION + "6 of the product " + "spec" + "ification")
    for line in cited:
        assert outside_references(line), line
    for line in ["RFC 9110 " + SECTION + "15.5.6", "(RFC 9457 " + SECTION + "3.2)", "issuer 6"]:
        assert not outside_references(line), line


def test_privacy_invariants_are_cited_with_the_page_that_defines_them() -> None:
    missing = []
    for path in scanned_files():
        text = text_of(path)
        if text is None or path.name == PRIVACY_PAGE:
            continue
        if INVARIANT.search(text) and PRIVACY_PAGE not in text:
            missing.append(path.relative_to(ROOT).as_posix())
    assert not missing, "name docs/privacy.md where P1…P9 are cited: " + ", ".join(missing)


# --- links ---------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
QUOTED_PATH = re.compile(
    r"`((?:src|tests|docs|bench|alembic|openapi|\.ci)/[A-Za-z0-9_./-]*?)(?:::[A-Za-z0-9_]+)?`"
)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def linked_docs() -> list[Path]:
    return [ROOT / name for name in LINKED_DOCS] + sorted((ROOT / "docs").glob("*.md"))


def anchors(markdown: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", markdown.read_text(encoding="utf-8"))
    ids = set()
    for heading in HEADING.findall(text):
        plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
        ids.add(re.sub(r"[^\w\- ]", "", plain).replace(" ", "-"))
    return ids


def broken_links(doc: Path) -> list[str]:
    prose = FENCE.sub("", doc.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(INLINE_CODE.sub("", prose)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # an absolute URL: not ours to check here
        path_part, _, fragment = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment.lower() not in anchors(path):
            broken.append(f"{target}: no such heading")
    for quoted in QUOTED_PATH.findall(prose):
        if "*" not in quoted and not (ROOT / quoted.rstrip("/")).exists():
            broken.append(f"`{quoted}`: no such path")
    return broken


@pytest.mark.parametrize("doc", linked_docs(), ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file(doc: Path) -> None:
    broken = broken_links(doc)
    assert not broken, "\n".join(broken)


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading\n", encoding="utf-8")
    doc = tmp_path / "page.md"
    doc.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [web](https://example.com/x)\n"
        "[gone](missing.md) [no anchor](there.md#nope)\n"
        "```text\n[in code](ignored.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == ["missing.md: no such file", "there.md#nope: no such heading"]
