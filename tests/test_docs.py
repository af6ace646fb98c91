"""README.md is the front door (issue 35 step 5): at most 200 lines, and every page under docs/ can be reached from
it by following relative links; every relative link in README.md and docs/ names a file that exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _links(page: Path) -> list[Path]:
    """The files that `page`'s relative markdown links name (web links and pure anchors left out)."""
    return [(page.parent / t).resolve() for t in LINK.findall(page.read_text())
            if not re.match(r"\w+://|mailto:", t)]


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines: move detail to docs/"


def test_relative_links_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = [f"{p.relative_to(ROOT)} -> {t.relative_to(ROOT) if t.is_relative_to(ROOT) else t}"
              for p in pages for t in _links(p) if not t.exists()]
    assert not broken, broken


def test_every_docs_page_is_reachable_from_readme():
    seen, todo = set(), [(ROOT / "README.md").resolve()]
    while todo:
        page = todo.pop()
        if page in seen or page.suffix != ".md" or not page.is_file():
            continue
        seen.add(page)
        todo.extend(_links(page))
    pages = {p.resolve() for p in (ROOT / "docs").rglob("*.md")}
    assert pages, "docs/ has no pages"
    unreachable = sorted(str(p.relative_to(ROOT)) for p in pages - seen)
    assert not unreachable, f"not linked from README.md (directly or through a linked page): {unreachable}"
