"""The cells every course notebook starts with: title badge, Colab link and setup cell.

The repository address lives here and only here. After changing it, restamp every notebook:

    python -m recsys_lib.course

A test checks that each notebook's badge and setup cell equal what this module produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from recsys_lib.config import REPO_ROOT

REPO_URL = "https://github.com/recsys-course/recsys-course"
BRANCH = "main"
NOTEBOOK_FOLDERS = ("notebooks", "exercises", "solutions")
BADGE_TAG = "colab-badge"
SETUP_TAG = "setup"


def colab_url(relative_path: str) -> str:
    """The Open-in-Colab address of a notebook, given its path inside the repository."""
    github = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github}/blob/{BRANCH}/{relative_path}"


def badge_source(relative_path: str) -> str:
    """Markdown for the "Open in Colab" badge of one notebook."""
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(relative_path)})"
    )


def setup_cell_source() -> str:
    """The first code cell of every notebook; works in JupyterLab and in Google Colab."""
    return f'''# Setup: in a local clone the course library is already installed (see README).
# In Google Colab this cell fetches the course once and installs its library.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO_URL = "{REPO_URL}"
    COURSE_DIR = "/content/recsys-course"
    if not os.path.isdir(COURSE_DIR):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, COURSE_DIR], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", COURSE_DIR],
                       check=True)
    sys.path.insert(0, COURSE_DIR)'''


def course_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """Every notebook in notebooks/, exercises/ and solutions/, sorted."""
    return sorted(p for folder in NOTEBOOK_FOLDERS for p in (root / folder).glob("*.ipynb"))


def stamp(nb: nbformat.NotebookNode, relative_path: str) -> bool:
    """Rewrite the badge and setup cells (found by their tags) of a notebook in memory.

    Returns:
        True if anything changed.

    Raises:
        ValueError: the notebook has no cell tagged ``colab-badge`` or ``setup``.
    """
    wanted = {BADGE_TAG: badge_source(relative_path), SETUP_TAG: setup_cell_source()}
    changed, found = False, set()
    for cell in nb.cells:
        for tag in set(cell.get("metadata", {}).get("tags", [])) & wanted.keys():
            found.add(tag)
            if cell.source != wanted[tag]:
                cell.source, changed = wanted[tag], True
    missing = wanted.keys() - found
    if missing:
        raise ValueError(f"{relative_path}: no cell tagged {sorted(missing)}")
    return changed


def main(argv: list[str] | None = None) -> int:
    """Restamp every course notebook; prints which ones changed."""
    for path in course_notebooks():
        nb = nbformat.read(path, as_version=4)
        if stamp(nb, path.relative_to(REPO_ROOT).as_posix()):
            nbformat.write(nb, path)
            print(f"restamped {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def header_cells(title_markdown: str, relative_path: str) -> list[nbformat.NotebookNode]:
    """The first three cells of a lesson notebook: title, tagged Colab badge, tagged setup.

    Args:
        title_markdown: the title cell (``# 00 · ...`` and the "what you will learn" paragraph).
        relative_path: the notebook's path in the repository, e.g. ``notebooks/00_tour.ipynb``.
    """
    return [
        nbformat.v4.new_markdown_cell(title_markdown),
        nbformat.v4.new_markdown_cell(badge_source(relative_path),
                                      metadata={"tags": [BADGE_TAG]}),
        nbformat.v4.new_code_cell(setup_cell_source(), metadata={"tags": [SETUP_TAG]}),
    ]
