"""Turn benchmark outputs into the results tables of the README (never typed by hand).

    python -m recsys_lib.results results/ml-100k                # print the Markdown table
    python -m recsys_lib.results results/ml-100k --readme README.md

Every ``metrics.json`` under the folder is one run. Runs of the same model (e.g. three
seeds) are averaged and shown as mean ± standard deviation. With ``--readme``, the table
replaces the text between ``<!-- results:<folder name>:start -->`` and ``...:end -->``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("ndcg@10", "hit_rate@10", "mrr@10", "recall@10")


def collect_runs(folder: str | Path) -> pd.DataFrame:
    """One row per metrics.json: model, seed, the test metrics, parameters, wall time.

    Raises:
        FileNotFoundError: no metrics.json under ``folder``.

    Explained in notebook 05 (the results table) and the README.
    """
    paths = sorted(Path(folder).rglob("metrics.json"))
    if not paths:
        raise FileNotFoundError(f"no metrics.json under {folder}; run the benchmark first")
    rows = []
    for path in paths:
        run = json.loads(path.read_text())
        rows.append({"model": run["model"], "seed": run["seed"], "quick": run["quick"],
                     "params": json.dumps(run["best_params"], sort_keys=True),
                     "wall_seconds": run["wall_seconds"], **run["test"]})
    return pd.DataFrame(rows)


def _cell(values: pd.Series, best: bool) -> str:
    text = f"{values.mean():.4f}"
    if len(values) > 1:
        text += f" ± {values.std(ddof=1):.4f}"
    return f"**{text}**" if best else text


def results_table(runs: pd.DataFrame) -> str:
    """A Markdown table, best model first by mean NDCG@10; the best value in bold.

    Explained in notebook 05 (the results table) and the README.
    """
    if runs["quick"].any():
        raise ValueError("some runs were made with --quick; the README shows full runs only")
    grouped = runs.groupby("model")
    order = grouped["ndcg@10"].mean().sort_values(ascending=False).index
    best = {c: grouped[c].mean().max() for c in COLUMNS}
    head = ("| model | runs | " + " | ".join(c.replace("_", " ").upper() for c in COLUMNS)
            + " | time (s) | chosen parameters |")
    lines = [head, "|---|---:|" + "---:|" * len(COLUMNS) + "---:|---|"]
    for model in order:
        g = grouped.get_group(model)
        cells = [_cell(g[c], bool(np.isclose(g[c].mean(), best[c]))) for c in COLUMNS]
        params = " / ".join(sorted(set(g["params"]))).replace("|", "\\|")
        lines.append(f"| {model} | {len(g)} | " + " | ".join(cells)
                     + f" | {g['wall_seconds'].mean():.0f} | `{params}` |")
    return "\n".join(lines)


def _block_pattern(key: str) -> re.Pattern:
    """Matches ``<!-- results:<key>:start -->``, the table, ``<!-- results:<key>:end -->``."""
    return re.compile(rf"(<!-- results:{re.escape(key)}:start -->\n)(.*?)(<!-- results:"
                      rf"{re.escape(key)}:end -->)", re.S)


def readme_table(readme: str | Path, key: str) -> str:
    """The table text between the ``results:<key>`` markers in ``readme`` (without markers).

    Raises:
        ValueError: the markers are missing.

    Explained in notebook 05 (the results table) and the README.
    """
    match = _block_pattern(key).search(Path(readme).read_text())
    if not match:
        raise ValueError(f"{readme} has no <!-- results:{key}:start/end --> markers")
    return match.group(2)


def update_readme(readme: str | Path, key: str, table: str) -> None:
    """Replace the block between the ``results:<key>`` markers in ``readme``.

    Raises:
        ValueError: the markers are missing.

    Explained in notebook 05 (the results table) and the README.
    """
    path = Path(readme)
    readme_table(path, key)  # raises if the markers are missing
    path.write_text(_block_pattern(key).sub(
        lambda m: m.group(1) + table + "\n" + m.group(3), path.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_lib.results",
                                     description="Markdown results table from benchmark runs")
    parser.add_argument("folder", type=Path, help="e.g. results/ml-100k")
    parser.add_argument("--readme", type=Path, help="rewrite this README's marked table")
    args = parser.parse_args(argv)
    table = results_table(collect_runs(args.folder))
    if args.readme:
        update_readme(args.readme, args.folder.name, table)
        print(f"updated the {args.folder.name} table in {args.readme}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
