"""Benchmark on the part of MovieLens 1M that the course's build machine had (maintainers only).

MovieLens 1M may not be redistributed, and the machine the course was built on had no network:
only a truncated copy of ml-1m's ``ratings.dat`` holding users 1-2999 (487,650 of the
1,000,209 ratings; see ``../shared/datasets/SOURCES.md``). The file is cut off inside user
2999, so that user is dropped; users 1-2998 keep their whole histories. The protocol is the
benchmark's (leave-last-out, full ranking, seen items excluded), but with half the users these
numbers are **not** the full-ml-1m numbers that papers report. Run from the repository root:

    .venv/bin/python results/ml-1m-partial/run.py --shared ../shared/datasets
    .venv/bin/python -m recsys_lib.results results/ml-1m-partial --readme README.md

Learners with network access run the real thing instead:
``python -m recsys_lib.benchmark --model sasrec --dataset ml-1m --out results/ml-1m/sasrec``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recsys_lib import benchmark
from recsys_lib.data import _read_ml1m

PARTIAL = "ml-1m/partial/ratings.PARTIAL_users1-2999.dat.gz"
LAST_USER = 2999  # truncated in the file


def load_partial(shared: Path):
    """``(ratings, items)`` of users 1-2998 from the truncated ratings file and movies.dat."""
    ratings, items = _read_ml1m(shared / "ml-1m", ratings_path=shared / PARTIAL)
    return ratings[ratings["user_id"] != LAST_USER].reset_index(drop=True), items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True, help="the shared datasets folder")
    parser.add_argument("--models", nargs="+",
                        default=["popularity", "item_knn", "ease", "als", "sasrec"])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    data = load_partial(args.shared)
    print(f"{len(data[0]):,} ratings, {data[0].user_id.nunique():,} users, "
          f"{data[0].item_id.nunique():,} items")
    for model in args.models:
        out = Path(__file__).parent / model
        result = benchmark.run(model, "ml-1m (users 1-2998)", out, seed=args.seed, data=data)
        print(model, result["test"], f"{result['wall_seconds']} s", flush=True)


if __name__ == "__main__":
    main()
