"""Validation NDCG@10 of SASRec settings on ml-100k (seed 42): does max_len 200 help?

Each setting is fitted on the benchmark's training part with early stopping on its validation
part (the benchmark's tuning step; the test part is not touched), with the benchmark's SASRec
settings unless the argument changes them. Writes one JSON line per setting to stdout. Run from
the repository root, e.g.:

    .venv/bin/python results/ml-100k-speed/tune.py --data-dir DIR \\
        "max_len=200:batch_tokens=6400" "max_len=200:batch_tokens=6400:learning_rate=0.002"

The lines of the run the README cites are in ``validation.jsonl`` next to this file.
"""

from __future__ import annotations

import argparse
import json
import time

from recsys_lib.config import import_tensorflow_quietly, set_seed

import_tensorflow_quietly()

from recsys_lib.benchmark import protocol_split  # noqa: E402
from recsys_lib.data import load_movielens  # noqa: E402
from recsys_lib.models.sasrec import SASRecRecommender  # noqa: E402

BASE = {"max_len": 50, "d_model": 64, "num_blocks": 2, "num_heads": 2, "dropout": 0.2,
        "epochs": 150, "patience": 3, "eval_every": 3, "progress": False, "bucketing": True}


def parse(spec: str) -> dict:
    """``"max_len=200:learning_rate=0.002"`` -> ``{"max_len": 200, "learning_rate": 0.002}``."""
    out = {}
    for item in spec.split(":"):
        key, value = item.split("=")
        out[key] = float(value) if any(c in value for c in ".e") else int(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("settings", nargs="+", help="key=value pairs joined by ':'")
    args = parser.parse_args()
    ratings, _ = load_movielens("ml-100k", args.data_dir)
    split = protocol_split(ratings)
    for spec in args.settings:
        set_seed(42)
        started = time.perf_counter()
        model = SASRecRecommender(seed=42, **(BASE | parse(spec)))
        model.fit(split.train, validation=split.val)
        vals = [round(r["val_ndcg@10"], 4) for r in model.history_ if "val_ndcg@10" in r]
        print(json.dumps({"spec": spec, "best": max(vals), "best_epoch": model.best_epoch_,
                          "seconds": round(time.perf_counter() - started), "vals": vals}),
              flush=True)


if __name__ == "__main__":
    main()
