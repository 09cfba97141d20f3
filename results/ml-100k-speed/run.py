"""Epoch seconds of SASRec on ml-100k: padding to max_len vs length buckets (notebook 13).

Trains the benchmark's SASRec (d_model 64, 2 blocks, batch 128, XLA) for a few epochs on the
training part of the benchmark's split, without validation, once per setting, and writes the
median seconds of the epochs after the first (the first one traces and compiles) and the first
epoch's seconds to ``epoch_times.json``. Run from the repository root:

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
from recsys_lib.models.sasrec import SASRecRecommender  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "epoch_times.json")
    args = parser.parse_args()
    ratings, _ = load_movielens("ml-100k", args.data_dir)
    train = protocol_split(ratings).train
    started = time.perf_counter()
    runs = {}
    for name, settings in SETTINGS.items():
        runs[name] = epoch_times(train, settings, args.epochs)
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
