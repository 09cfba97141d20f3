"""Generate the exercise and solution notebooks from one source file per lesson.

Source files live in ``exercises/source/exNN_<topic>.py`` in "percent" format:

* ``# %% [markdown]`` starts a Markdown cell (each line starts with ``# ``);
* ``# %%`` starts a code cell; ``# %% [solution-only]`` / ``# %% [exercise-only]`` a code cell
  that appears in one variant only;
* inside code, ``# BEGIN SOLUTION q1`` ... ``# END SOLUTION`` marks the worked answer. The
  exercise variant replaces it with the commented lines of a following
  ``# BEGIN EXERCISE`` ... ``# END EXERCISE`` block (uncommented), or, without one, with
  ``raise NotImplementedError("...")``.

The source is itself a valid Python file that runs the solutions. Usage (repository root):

    python -m recsys_lib.exercises.build            # write exercises/ and solutions/
    python -m recsys_lib.exercises.build --execute  # ... and execute the solutions
    python -m recsys_lib.exercises.build --check    # exit 1 if a notebook drifted
    python -m recsys_lib.exercises.build --only ex02 --execute   # one lesson

Notebook 00 explains how learners use the generated notebooks.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from recsys_lib.config import REPO_ROOT
from recsys_lib.course import BADGE_TAG, SETUP_TAG, badge_source, setup_cell_source

SOURCE_DIR = REPO_ROOT / "exercises" / "source"
PLACEHOLDER = 'raise NotImplementedError("Write your answer here, then run the cell")'
_HEADER = re.compile(r"^# %%(?:\s*\[(?P<kind>[\w-]+)\])?\s*$")
_CHECK = re.compile(r"\b(q\d+)\.check\(")


@dataclass
class SourceCell:
    kind: str  # "markdown", "code", "solution-only", "exercise-only"
    text: str


def parse_source(text: str) -> list[SourceCell]:
    """Split a percent-format file into cells (text before the first marker is ignored)."""
    cells: list[SourceCell] = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            kind = header.group("kind") or "code"
            if kind not in {"markdown", "code", "solution-only", "exercise-only"}:
                raise ValueError(f"unknown cell kind [{kind}] in line {line!r}")
            cells.append(SourceCell(kind, ""))
        elif cells:
            cells[-1].text += line + "\n"
    for cell in cells:
        cell.text = cell.text.strip("\n")
        if cell.kind == "markdown":
            cell.text = "\n".join(re.sub(r"^# ?", "", ln) for ln in cell.text.splitlines())
    return [c for c in cells if c.text.strip()]


_SOLUTION = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN SOLUTION \w+[ \t]*\n(?P<body>.*?)^[ \t]*# END SOLUTION[ \t]*\n?"
    r"(?:^[ \t]*# BEGIN EXERCISE[ \t]*\n(?P<ex>.*?)^[ \t]*# END EXERCISE[ \t]*\n?)?",
    re.M | re.S,
)
_EXERCISE_ONLY_BLOCK = re.compile(
    r"^[ \t]*# BEGIN EXERCISE[ \t]*\n.*?^[ \t]*# END EXERCISE[ \t]*\n?", re.M | re.S
)


def _as_exercise(code: str) -> str:
    def replace(m: re.Match) -> str:
        indent = m.group("indent")
        if m.group("ex") is None:
            return f"{indent}{PLACEHOLDER}\n"
        lines = [re.sub(r"^([ \t]*)# ?", r"\1", ln) for ln in m.group("ex").splitlines()]
        return "\n".join(lines) + "\n"

    return _SOLUTION.sub(replace, code + "\n").rstrip("\n")


def _as_solution(code: str) -> str:
    code = _EXERCISE_ONLY_BLOCK.sub("", code + "\n")
    code = re.sub(r"^[ \t]*# (BEGIN|END) SOLUTION.*\n?", "", code, flags=re.M)
    return code.rstrip("\n")


def build_notebook(source: Path, variant: str) -> nbformat.NotebookNode:
    """Build the ``"exercise"`` or ``"solution"`` notebook of one source file (no outputs)."""
    if variant not in ("exercise", "solution"):
        raise ValueError(f"variant must be 'exercise' or 'solution', got {variant!r}")
    lesson, _, topic = source.stem.partition("_")
    folder = "exercises" if variant == "exercise" else "solutions"
    relative = f"{folder}/{lesson.removeprefix('ex')}_{topic}.ipynb"
    cells = parse_source(source.read_text())
    if not cells or cells[0].kind != "markdown":
        raise ValueError(f"{source}: the first cell must be the Markdown title")
    title = cells[0].text
    if variant == "solution":
        title = title.replace("# Exercises", "# Worked solutions", 1)
    nb = nbformat.v4.new_notebook()
    nb.metadata.update({
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "recsys_exercise": {"lesson": lesson, "variant": variant},
    })
    nb.cells.append(nbformat.v4.new_markdown_cell(title))
    nb.cells.append(nbformat.v4.new_markdown_cell(badge_source(relative),
                                                  metadata={"tags": [BADGE_TAG]}))
    nb.cells.append(nbformat.v4.new_code_cell(setup_cell_source(),
                                              metadata={"tags": [SETUP_TAG]}))
    for cell in cells[1:]:
        if cell.kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell.text))
            continue
        if cell.kind not in ("code", f"{variant}-only"):
            continue
        code = _as_exercise(cell.text) if variant == "exercise" else _as_solution(cell.text)
        nb.cells.append(nbformat.v4.new_code_cell(code))
        if variant == "exercise":
            for q in dict.fromkeys(_CHECK.findall(code)):
                nb.cells.append(nbformat.v4.new_code_cell(
                    f"# Stuck? Uncomment a line and run the cell.\n# {q}.hint()\n# {q}.solution()"
                ))
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"{lesson}-{variant[:3]}-{i:02d}"
    return nb


def target_path(source: Path, variant: str) -> Path:
    """Where the built notebook is stored (``exercises/01_x.ipynb``, ``solutions/01_x.ipynb``)."""
    lesson, _, topic = source.stem.partition("_")
    folder = "exercises" if variant == "exercise" else "solutions"
    return REPO_ROOT / folder / f"{lesson.removeprefix('ex')}_{topic}.ipynb"


def sources(folder: Path = SOURCE_DIR) -> list[Path]:
    """All exercise sources, sorted."""
    return sorted(folder.glob("ex*_*.py"))


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def drifted(source: Path) -> list[str]:
    """Names of the stored notebooks whose cells differ from what ``source`` builds."""
    problems = []
    for variant in ("exercise", "solution"):
        path = target_path(source, variant)
        if not path.is_file():
            problems.append(f"{path.relative_to(REPO_ROOT)} is missing")
            continue
        if _cells(nbformat.read(path, as_version=4)) != _cells(build_notebook(source, variant)):
            problems.append(f"{path.relative_to(REPO_ROOT)} differs from {source.name}")
    return problems


def execute(path: Path, timeout: int = 600) -> None:
    """Run a notebook in place (full mode unless RECSYS_QUICK is set) and store its outputs.

    The same run as ``python -m recsys_lib.execute`` (plain progress lines, no timings).
    """
    from recsys_lib.config import is_quick_mode
    from recsys_lib.execute import execute as execute_notebook

    execute_notebook(path, quick=is_quick_mode(), timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    parser.add_argument("--execute", action="store_true", help="execute the solutions")
    parser.add_argument("--only", metavar="exNN", help="build one lesson, e.g. ex02")
    args = parser.parse_args(argv)
    chosen = [s for s in sources() if args.only is None or s.stem.startswith(f"{args.only}_")]
    if not chosen:
        parser.error(f"no exercise source matches {args.only!r} in {SOURCE_DIR}")
    if args.check:
        problems = [p for s in chosen for p in drifted(s)]
        print("\n".join(problems) or "exercises and solutions match their sources")
        return 1 if problems else 0
    for source in chosen:
        for variant in ("exercise", "solution"):
            path = target_path(source, variant)
            built = build_notebook(source, variant)
            if not path.is_file() or _cells(nbformat.read(path, as_version=4)) != _cells(built):
                path.parent.mkdir(exist_ok=True)
                nbformat.write(built, path)  # a rebuilt notebook has no outputs until executed
                print(f"wrote {path.relative_to(REPO_ROOT)}")
            if args.execute and variant == "solution":
                execute(path)
                print(f"executed {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
