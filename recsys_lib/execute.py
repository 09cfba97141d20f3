"""Execute notebooks in full mode and store their outputs, clean (for maintainers).

    python -m recsys_lib.execute notebooks/04_matrix_factorization.ipynb [more ...] [--quick]

Each notebook runs top to bottom in a fresh kernel from its own folder, in full mode (what
a learner gets; ``--quick`` for a fast trial that is not meant to be committed), with
``RECSYS_PLAIN_PROGRESS=1`` so that progress shows as plain lines (:mod:`recsys_lib.
progress`), and is written back in place. Then its stored outputs are checked by
:func:`stored_output_problems`: no TensorFlow C++ log lines, no progress-bar fragments
(text with carriage returns), no error outputs. The tests apply the same check to every
committed notebook.

Explained in notebook 00 (how the stored outputs were made).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat

#: TensorFlow / absl C++ log lines (``I0000 12:00:00.1 ...``), and the lines around them.
TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl"
    r"|.*oneDNN custom operations|.*failed call to cuInit|.*cudart_stub\.cc)", re.M)


def stored_output_problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What is wrong with a notebook's stored outputs, one message per problem cell.

    Args:
        notebook: a notebook read with ``nbformat.read``.

    Returns:
        Messages such as ``"cell 12: TensorFlow log lines"``; empty when clean.

    Explained in notebook 00.
    """
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            text = "".join(output.get("text", "")) if kind == "stream" else ""
            if TF_LOG_LINE.search(text):
                problems.append(f"cell {index}: TensorFlow log lines")
            if "\r" in text:
                problems.append(f"cell {index}: progress-bar fragments (carriage returns)")
            if kind == "error":
                problems.append(f"cell {index}: an error ({output.get('ename')})")
    return list(dict.fromkeys(problems))  # each problem once per cell


def execute(path: Path, quick: bool = False, timeout: int = 3600) -> float:
    """Run ``path`` in a fresh kernel and write it back with its outputs.

    Args:
        path: the notebook.
        quick: quick mode (for a trial run), otherwise full mode.
        timeout: seconds any one cell may take.

    Returns:
        Wall seconds.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (the file is not written).

    Explained in notebook 00.
    """
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    os.environ["RECSYS_QUICK"] = "1" if quick else "0"
    os.environ["RECSYS_PLAIN_PROGRESS"] = "1"
    os.environ.pop("MPLBACKEND", None)  # the inline backend stores the figures
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in notebook.cells:  # timings of an earlier run would only add noise to diffs
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.execute",
        description="Execute notebooks in full mode, store their outputs, check them.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--quick", action="store_true", help="quick mode (not for commits)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        seconds = execute(path, args.quick, args.timeout)
        problems = stored_output_problems(nbformat.read(path, as_version=4))
        print(f"{path}: executed in {seconds:.0f} s" + "".join(f"\n  {p}" for p in problems),
              flush=True)
        status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main())
