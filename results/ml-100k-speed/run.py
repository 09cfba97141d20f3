"""Epoch seconds of SASRec on ml-100k: padding to max_len vs length buckets (notebook 13).

Trains the benchmark's SASRec (d_model 64, 2 blocks, batch 128, XLA) for a few epochs on the
training part of the benchmark's split, without validation, once per setting, and writes the
median seconds of the epochs after the first (the first one traces and compiles), the first
epoch's seconds and the work of an epoch (steps, positions computed, attention work) to
``epoch_times.json``; ``--counts-only`` rewrites only the work counts (no training). Run
from the repository root:

    .venv/bin/python results/ml-100k-speed/run.py --data-dir DIR [--epochs 4]

where ``DIR/ml-100k/`` holds MovieLens 100K (``load_movielens`` downloads it there when online).
The numbers depend on the machine and on what else runs on it: compare settings of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from recsys_lib.config import import_tensorflow_quietly, set_seed

import_tensorflow_quietly()

import numpy as np  # noqa: E402

from recsys_lib.benchmark import protocol_split, versions  # noqa: E402
from recsys_lib.data import load_movielens  # noqa: E402
from recsys_lib.models.sasrec import (  # noqa: E402
    SASRecRecommender,
    bucket_boundaries,
    length_batches,
    rows_per_batch,
    training_windows,
)
from recsys_lib.splits import order_by_user_time  # noqa: E402

#: name -> SASRecRecommender settings (the rest are the benchmark's)
SETTINGS = {
    "max_len 50, padded": {"max_len": 50},
    "max_len 200, padded": {"max_len": 200},
    "max_len 50, buckets + 6400 tokens": {"max_len": 50, "bucketing": True,
                                          "batch_tokens": 6400},
    "max_len 200, buckets + 6400 tokens": {"max_len": 200, "bucketing": True,
                                           "batch_tokens": 6400},
}


def epoch_times(train, settings: dict, epochs: int) -> dict:
    """Fit once for ``epochs`` epochs; the first epoch's and the median later epoch's seconds."""
    set_seed(42)
    model = SASRecRecommender(d_model=64, num_blocks=2, epochs=epochs, progress=False,
                              **settings).fit(train)
    seconds = [row["seconds"] for row in model.history_]
    return {"settings": settings, "first_epoch_s": seconds[0],
            "epoch_s": float(np.median(seconds[1:])), "windows": len(model.windows_[0])}


def work_counts(train, settings: dict, batch_size: int = 128) -> dict:
    """Steps, computed positions and attention work (positions x width) of one epoch.

    No training: the batches an epoch of these settings feeds (padded to ``max_len``, or
    cropped to length buckets), counted. Real targets are the same for every setting.
    """
    ordered = order_by_user_time(train)
    index = {item: i + 1 for i, item in enumerate(sorted(ordered["item_id"].unique()))}
    sequences = [np.array([index[i] for i in items])
                 for _, items in ordered.groupby("user_id", sort=False)["item_id"]]
    max_len = settings["max_len"]
    _, targets = training_windows(sequences, max_len)
    real = (targets > 0).sum(axis=1)
    if settings.get("bucketing"):
        batches = length_batches(real, batch_size, bucket_boundaries(max_len),
                                 np.random.default_rng(0), settings.get("batch_tokens"))
        shapes = [(rows_per_batch(w, batch_size, settings.get("batch_tokens")), w)
                  for _, w in batches]
    else:
        shapes = [(batch_size, max_len)] * -(-len(targets) // batch_size)
    return {"real_targets": int(real.sum()), "steps": len(shapes),
            "positions": sum(r * w for r, w in shapes),
            "attention_work": sum(r * w * w for r, w in shapes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "epoch_times.json")
    parser.add_argument("--counts-only", action="store_true",
                        help="only (re)write each setting's work counts into an existing --out")
    args = parser.parse_args()
    ratings, _ = load_movielens("ml-100k", args.data_dir)
    train = protocol_split(ratings).train
    counts = {name: work_counts(train, settings) for name, settings in SETTINGS.items()}
    if args.counts_only:
        result = json.loads(args.out.read_text())
        for name, run in result["runs"].items():
            run["work"] = counts[name]
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote the work counts into {args.out}")
        return
    started = time.perf_counter()
    runs = {}
    for name, settings in SETTINGS.items():
        runs[name] = epoch_times(train, settings, args.epochs) | {"work": counts[name]}
        print(f"{name}: {runs[name]['epoch_s']:.2f} s per epoch "
              f"(first {runs[name]['first_epoch_s']:.1f} s)", flush=True)
    base = runs["max_len 50, padded"]["epoch_s"]
    result = {"dataset": "ml-100k", "epochs": args.epochs, "runs": runs,
              "ratio_to_max_len_50_padded": {n: round(r["epoch_s"] / base, 2)
                                             for n, r in runs.items()},
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
              "cpus": os.cpu_count(), "machine": platform.machine(),
              "wall_seconds": round(time.perf_counter() - started, 1), "versions": versions()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
