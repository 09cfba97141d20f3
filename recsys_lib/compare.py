"""Paired comparison of two benchmark runs from their saved files (notebook 05 explains it).

Two runs of :mod:`recsys_lib.benchmark` on the same dataset and tie rule rank for the same test
users. This command rebuilds that test split, scores each run's ``recommendations.csv`` per
user and prints a paired bootstrap interval of the difference
(:func:`recsys_lib.stats.paired_bootstrap`)::

    python -m recsys_lib.compare results/ml-100k/sasrec/seed-42 results/ml-100k/gru4rec/seed-42 \\
        --data-dir ../shared/datasets

The README's paired intervals come from this command.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from recsys_lib.benchmark import protocol_split
from recsys_lib.data import load_movielens
from recsys_lib.metrics import relevant_items
from recsys_lib.stats import PairedComparison, paired_bootstrap, per_user_metric


def read_run(folder: str | Path) -> tuple[dict, dict]:
    """``(metrics.json content, user -> ranked item list)`` of one benchmark run folder.

    Raises:
        FileNotFoundError: the folder lacks ``metrics.json`` or ``recommendations.csv``
            (``recommendations.csv`` is not committed: rerun the benchmark to get it).

    Notebook 05 explains it.
    """
    folder = Path(folder)
    for name in ("metrics.json", "recommendations.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: run the benchmark "
                                    f"(python -m recsys_lib.benchmark ... --out {folder}) first; "
                                    "recommendations.csv is not part of the repository")
    run = json.loads((folder / "metrics.json").read_text())
    table = pd.read_csv(folder / "recommendations.csv").sort_values(["user_id", "rank"])
    return run, table.groupby("user_id")["item_id"].agg(list).to_dict()


def tie_seed_of(run: dict) -> int | None:
    """The ``--tie-seed`` a run used (None for file order), from its ``ties`` entry."""
    match = re.fullmatch(r"random \(seed (\d+)\)", run.get("ties", "file order"))
    return int(match.group(1)) if match else None


def compare_runs(folder_a: str | Path, folder_b: str | Path, data_dir: str | None = None,
                 metric: str = "ndcg", k: int = 10, seed: int = 0) -> PairedComparison:
    """Paired bootstrap of run A minus run B, per test user, on the split both ran on.

    Args:
        folder_a, folder_b: benchmark output folders (``metrics.json`` + ``recommendations.csv``).
        data_dir: where the dataset's files are (as for the benchmark).
        metric, k: the per-user metric (see :func:`recsys_lib.stats.per_user_metric`).
        seed: the bootstrap's seed.

    Returns:
        The :class:`recsys_lib.stats.PairedComparison`.

    Raises:
        ValueError: the runs used different datasets or tie rules, their test users differ
            from the rebuilt split's, or a run's two files disagree.

    Notebook 05 explains it.
    """
    (run_a, recs_a), (run_b, recs_b) = read_run(folder_a), read_run(folder_b)
    for key in ("dataset", "ties"):
        if run_a.get(key, "file order") != run_b.get(key, "file order"):
            raise ValueError(f"the runs differ in {key}: {run_a.get(key)!r} vs {run_b.get(key)!r}; "
                             "a paired comparison needs the same test split")
    ratings, _ = load_movielens(run_a["dataset"], data_dir)
    relevant = relevant_items(protocol_split(ratings, tie_seed_of(run_a)).test)
    for run, recs in ((folder_a, recs_a), (folder_b, recs_b)):
        if set(recs) != set(relevant):
            raise ValueError(f"{run}: its test users are not those of the rebuilt split")
    a = per_user_metric(recs_a, relevant, metric, k)
    b = per_user_metric(recs_b, relevant, metric, k)
    for folder, run, values in ((folder_a, run_a, a), (folder_b, run_b, b)):
        stored = run["test"].get(f"{metric}@{k}")
        if stored is not None and abs(values.mean() - stored) > 1e-9:
            raise ValueError(f"{folder}: its recommendations.csv gives {metric}@{k} "
                             f"{values.mean():.4f} but its metrics.json says {stored:.4f}: the "
                             "two files come from different runs; rerun the benchmark")
    return paired_bootstrap(a, b, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_lib.compare",
                                     description="Paired bootstrap of two benchmark runs.")
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    result = compare_runs(args.run_a, args.run_b, args.data_dir, k=args.k)
    print(result.verdict(Path(args.run_a).as_posix(), Path(args.run_b).as_posix()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
