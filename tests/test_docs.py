"""The README and docs/*.md: every relative link and image points at a file and a heading that exist.

The README is the front door and the detail lives in docs/ (issue 17), so sections move between files;
a link to a moved heading must fail here, not on a reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*```")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, in_code = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces to hyphens, -1 ...)."""
    anchors: set[str] = set()
    for line in prose_lines(text):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def relative_links(page: Path) -> list[str]:
    """The link and image targets of a page that are not web addresses."""
    targets = [m.group(1) for line in prose_lines(page.read_text(encoding="utf-8")) for m in _LINK.finditer(line)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_heading_anchors_follow_github():
    text = "# Top\n## Several machines (scale-out)\n## Measure, print, share\n```\n# not a heading\n```\n## Top\n"
    assert heading_anchors(text) == {"top", "several-machines-scale-out", "measure-print-share", "top-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(page: Path):
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(
                f"{target}: no file {linked.relative_to(REPO_ROOT) if linked.is_relative_to(REPO_ROOT) else linked}"
            )
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO_ROOT)}")
    assert not broken, f"{page.name}: broken links:\n" + "\n".join(broken)


def test_readme_shows_the_four_tabs():
    images = [t for t in relative_links(REPO_ROOT / "README.md") if t.startswith("docs/images/tab-")]
    assert sorted(images) == [f"docs/images/tab-{name}.png" for name in ("3d", "compare", "depth", "upload")]
