"""Comments and docs cite documents the repository holds, by a section that exists.

A reader of the repository must be able to follow every citation: ``docs/FORMAT.md,
"request.json"`` names a heading of docs/FORMAT.md; a citation of a document the
repository does not hold (a "SPEC §5.2") or of a heading that was renamed is a dead end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

DOCS = {"docs/FORMAT.md": "docs/FORMAT.md", "docs/BACKENDS.md": "docs/BACKENDS.md"}
DOCS |= {"README": "README.md", "README.md": "README.md"}

# `docs/FORMAT.md, "request.json"`, `docs/FORMAT.md ("Chunked snapshots")`, `README, "Benchmarks"`;
# a comment may wrap between the document and the section (``# `` on the next line).
CITATION = re.compile(
    r'(docs/FORMAT\.md|docs/BACKENDS\.md|README(?:\.md)?)[,:]?\s*(?:#\s*)?\(?"([^"\n]+)"'
)
# What a citation of the contract this project was written against looked like.
FOREIGN = re.compile(r"\bSPEC\s*§|\bSPEC\.md\b|\bthe SPEC\b|\bSPEC's\b|§\s*\d")


def _sources() -> list[Path]:
    """Every Python and Markdown file of the repository (what a reader may open)."""
    skip = {".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    found = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if skip.intersection(rel.parts) or not path.is_file():
            continue
        if path.suffix in (".py", ".md") or rel.parts[0] == ".ci":
            found.append(path)
    return found


def headings(markdown: str) -> list[str]:
    """The text of every heading, code spans kept: ``Running an app: `car run` ``.

    Lines inside fenced code blocks are not headings (a ``# comment`` in a shell example).
    """
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.+)$", line)):
            found.append(m.group(1).strip())
    return found


def dangling(text: str, heads: dict[str, list[str]]) -> list[str]:
    """Citations in ``text`` of a heading its document lacks, or of a foreign document.

    A citation names a heading or a prefix of one (``"Running an app"`` for
    ``Running an app: `car run` ``).
    """
    bad = [m.group(0) for m in FOREIGN.finditer(text)]
    for m in CITATION.finditer(text):
        doc, section = DOCS[m.group(1)], m.group(2)
        if not any(h.startswith(section) for h in heads[doc]):
            bad.append(m.group(0))
    return bad


@pytest.fixture(scope="module")
def doc_headings() -> dict[str, list[str]]:
    return {doc: headings((ROOT / doc).read_text()) for doc in set(DOCS.values())}


def test_every_citation_names_a_section_of_a_document_the_repository_holds(
    doc_headings: dict[str, list[str]],
) -> None:
    found = {
        str(path.relative_to(ROOT)): bad
        for path in _sources()
        if path != Path(__file__).resolve()
        and (bad := dangling(path.read_text(errors="replace"), doc_headings))
    }
    assert found == {}


def test_the_check_finds_a_foreign_document_and_a_missing_section(
    doc_headings: dict[str, list[str]],
) -> None:
    text = (
        '# claim (SPEC §5.2)\n# see docs/FORMAT.md, "No such section"\n'
        '# fine: docs/FORMAT.md, "request.json" and README, "Safety rules"\n'
        '# wrapped: docs/BACKENDS.md,\n# "Storage layouts"\n'
        "# a bare section number (§7.9)\n"
    )
    assert dangling(text, doc_headings) == ["SPEC §", "§7", 'docs/FORMAT.md, "No such section"']
    assert headings("```sh\n# a comment\n```\n## Real heading\n") == ["Real heading"]
