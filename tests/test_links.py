"""Every relative Markdown link of the course points to a file that exists.

Checked: the Markdown cells of notebooks/, exercises/ and solutions/, README.md and docs/*.md.
http(s) and mailto links and pure `#anchors` are left out; a link's own `#anchor` is checked when
it points into a Markdown file (GitHub's heading ids). A notebook that is not written yet is
named in plain text ("notebook 12 (in preparation)"), never linked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_FOLDERS = ("notebooks", "exercises", "solutions")

#: Fenced code blocks, inline code spans and display/inline maths: no links inside them.
NOT_MARKDOWN = re.compile(r"```.*?```|~~~.*?~~~|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$", re.DOTALL)
#: `[text](target)` and `![alt](target)`, with an optional title; the target may be in <...>.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
#: Reference definitions: `[label]: target`.
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_sources() -> list[tuple[str, Path, str]]:
    """(label, folder the links are relative to, Markdown text) for every checked document."""
    sources = []
    for folder in NOTEBOOK_FOLDERS:
        for path in sorted((REPO_ROOT / folder).glob("*.ipynb")):
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            for index, cell in enumerate(cells):
                if cell["cell_type"] == "markdown":
                    text = "".join(cell["source"])
                    sources.append((f"{folder}/{path.name} cell {index}", path.parent, text))
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        label = path.relative_to(REPO_ROOT).as_posix()
        sources.append((label, path.parent, path.read_text(encoding="utf-8")))
    return sources


def relative_links(text: str) -> list[str]:
    """The link targets in Markdown text that are neither external nor pure anchors."""
    text = NOT_MARKDOWN.sub(" ", text)
    targets = INLINE_LINK.findall(text) + REFERENCE_DEFINITION.findall(text)
    return [t for t in targets if not EXTERNAL.match(t) and not t.startswith("#")]


def heading_ids(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped)."""
    markdown = re.sub(r"```.*?```", " ", markdown, flags=re.DOTALL)
    ids: set[str] = set()
    for heading in HEADING.findall(markdown):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in ids:
            n += 1
            candidate = f"{slug}-{n}"
        ids.add(candidate)
    return ids


def broken_links() -> list[str]:
    problems = []
    for label, base, text in markdown_sources():
        for target in relative_links(text):
            path_part, _, anchor = target.partition("#")
            path_part = path_part.split("?", 1)[0]
            resolved = (base / path_part).resolve()
            if not resolved.exists():
                problems.append(f"{label}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md":
                if anchor not in heading_ids(resolved.read_text(encoding="utf-8")):
                    problems.append(f"{label}: {target} (no heading #{anchor})")
    return problems


def test_every_relative_link_points_to_an_existing_file():
    assert broken_links() == []


def test_the_check_sees_the_links():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "notebooks/00_setup_and_tour.ipynb" in relative_links(readme)
    assert "docs/faq.md" in relative_links(readme)
    labels = {label.split(" cell ")[0] for label, _, text in markdown_sources()
              if relative_links(text)}
    assert "notebooks/01_preprocessing.ipynb" in labels  # links to its exercises


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see [05](../notebooks/05_evaluation.ipynb) and [web](https://example.org)", [
            "../notebooks/05_evaluation.ipynb"]),
        ("[up](#results) `[code](missing.md)` $[a](b)$ ![img](figs/x.png 'a title')", [
            "figs/x.png"]),
        ("[faq][1]\n\n[1]: docs/faq.md\n", ["docs/faq.md"]),
        ("[readme](../README.md#results)", ["../README.md#results"]),
    ],
)
def test_relative_links(text, expected):
    assert relative_links(text) == expected


def test_heading_ids():
    ids = heading_ids("# Title\n## Google Colab\n### MovieLens 100K\n## Licence and citation\n")
    assert {"google-colab", "movielens-100k", "licence-and-citation"} <= ids
