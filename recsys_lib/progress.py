"""Progress for long loops: a live bar for a person watching, one plain line in stored outputs.

A tqdm bar redraws itself with carriage returns; executed by a tool that stores the outputs
(nbconvert, nbval, the course's ``python -m recsys_lib.execute``), every redraw becomes a
fragment of text in the notebook. :func:`progress` shows a tqdm bar, unless the environment
variable ``RECSYS_PLAIN_PROGRESS=1`` is set (the tests and ``recsys_lib.execute`` set it),
in which case it prints one line when the loop ends::

    for k in progress(grid, "MF grid"):
        fit(k)
    # MF grid: 12 steps in 204 s

Explained in notebook 00 (how notebooks are executed and stored).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

PLAIN_PROGRESS_ENV_VAR = "RECSYS_PLAIN_PROGRESS"

T = TypeVar("T")


def plain_progress() -> bool:
    """True when progress should be plain lines (``RECSYS_PLAIN_PROGRESS`` is 1/true/yes).

    Explained in notebook 00.
    """
    return os.environ.get(PLAIN_PROGRESS_ENV_VAR, "").strip().lower() in {"1", "true", "yes"}


def progress(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` with a progress bar, or with one summary line at the end.

    Args:
        iterable: what to loop over.
        desc: a short label, e.g. ``"MF grid (factors x l2)"``.
        total: number of items, when ``iterable`` has no ``len``.

    Yields:
        The items of ``iterable``.

    Explained in notebook 00.
    """
    if plain_progress():
        start, count = time.perf_counter(), 0
        for item in iterable:
            yield item
            count += 1
        print(f"{desc}: {count} steps in {time.perf_counter() - start:.0f} s", flush=True)
        return
    with warnings.catch_warnings():  # tqdm.auto warns when ipywidgets is missing
        warnings.filterwarnings("ignore", message="IProgress not found")
        from tqdm.auto import tqdm

        bar = tqdm(iterable, desc=desc, total=total)
    yield from bar
