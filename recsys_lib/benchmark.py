"""Train one model on one dataset and evaluate it honestly (notebook 05 explains the protocol).

    python -m recsys_lib.benchmark --model ease --dataset ml-100k \\
        --data-dir ../shared/datasets --out results/ml-100k/ease [--quick] [--seeds 42 1 2]
    python -m recsys_lib.benchmark --model all --dataset bundled --out results/bundled

Protocol: leave-last-out split (per user, last interaction = test, the one before =
validation). Every configuration in the model's grid is trained on the training part and
scored on validation (NDCG@10, full ranking over the catalogue, seen items excluded); the
best one is retrained on training + validation (so the validation interaction is history, as
it would be in production) and evaluated once on test. Models that early-stop on validation
(``fit(train, validation=...)``, SASRec included) are retrained for the number of epochs
validation chose. Writes:

* ``metrics.json``: test HR, NDCG, MRR and recall at 10, the validation score of every
  configuration, the chosen parameters, split sizes, seed, wall time, library versions;
* ``recommendations.csv``: ``user_id,rank,item_id``, the top 100 per test user (original ids).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pandas as pd

from recsys_lib.config import set_seed
from recsys_lib.data import DATASET_NAMES, load_movielens
from recsys_lib.metrics import evaluate_ranking, relevant_items
from recsys_lib.splits import leave_last_out, shuffle_ties

K = 10
TOP_N_SAVED = 100
SELECTION_METRIC = f"ndcg@{K}"
TEST_METRICS = ("hit_rate", "ndcg", "mrr", "recall")


def protocol_split(ratings: pd.DataFrame, tie_seed: int | None = None):
    """The benchmark's split of ``ratings``: ties in the chosen order, then leave-last-out.

    Args:
        ratings: the dataset's interactions.
        tie_seed: None keeps the file order of equal timestamps; a seed shuffles them
            (:func:`recsys_lib.splits.shuffle_ties`).

    Returns:
        The :class:`recsys_lib.splits.Split` every benchmark run (and
        :mod:`recsys_lib.compare`) uses.

    Explained in notebook 05.
    """
    if tie_seed is not None:
        ratings = shuffle_ties(ratings, tie_seed)
    return leave_last_out(ratings, validation=True, short_users="train")


def _grid(**axes) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


def _factory(module: str, cls: str, needs_items: bool = False, seeded: bool = False):
    def make(params: dict, items: pd.DataFrame, seed: int):
        model_cls = getattr(__import__(f"recsys_lib.models.{module}", fromlist=[cls]), cls)
        extra = {"seed": seed} if seeded else {}
        return model_cls(items, **params) if needs_items else model_cls(**params, **extra)
    return make


#: name -> (factory, full grid, quick grid). Grids are small on purpose: each point is a fit.
MODELS: dict[str, tuple[Callable, list[dict], list[dict]]] = {
    "random": (_factory("baselines", "RandomRecommender", seeded=True), [{}], [{}]),
    "popularity": (_factory("baselines", "PopularityRecommender"), [{}], [{}]),
    "content": (_factory("content", "ContentBasedRecommender", needs_items=True),
                _grid(use_titles=[True, False], weight_by_rating=[True, False]),
                [{"weight_by_rating": True}]),
    "item_knn": (_factory("neighbours", "ItemKNNRecommender"),
                 _grid(k=[20, 50, 100, 200], shrinkage=[0.0, 10.0, 50.0]),
                 [{"k": 50, "shrinkage": 10.0}]),
    "user_knn": (_factory("neighbours", "UserKNNRecommender"),
                 _grid(k=[20, 50, 100, 200], shrinkage=[0.0, 10.0, 50.0]),
                 [{"k": 50, "shrinkage": 10.0}]),
    "ease": (_factory("linear", "EASERecommender"),
             _grid(l2=[50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0]), [{"l2": 500.0}]),
    "mf": (_factory("factorization", "MatrixFactorization", seeded=True),
           _grid(n_factors=[64], l2=[0.05, 0.1]), [{"n_factors": 32, "epochs": 5}]),
    "bpr": (_factory("factorization", "BPRRecommender", seeded=True),
            _grid(n_factors=[64], l2=[0.001, 0.005], epochs=[40]),
            [{"n_factors": 32, "epochs": 5}]),
    "als": (_factory("factorization", "ALSRecommender", seeded=True),
            _grid(n_factors=[64, 128], l2=[10.0, 50.0], alpha=[10.0]),
            [{"n_factors": 32, "iterations": 3}]),
    "neumf": (_factory("deep", "NeuMFRecommender", seeded=True),
              _grid(epochs=[30], eval_every=[2], patience=[3], progress=[False],
                    n_negatives=[4], learning_rate=[2e-3]),
              [{"epochs": 2, "progress": False}]),
    "two_tower": (_factory("deep", "TwoTowerRecommender", seeded=True),
                  _grid(epochs=[40], eval_every=[2], patience=[3], progress=[False],
                        temperature=[0.1]),
                  [{"epochs": 2, "progress": False}]),
    "sasrec": (_factory("sasrec", "SASRecRecommender", seeded=True),
               [{"max_len": 50, "d_model": 64, "num_blocks": 2, "num_heads": 2, "dropout": 0.2,
                 "epochs": 150, "patience": 3, "eval_every": 3}],
               # quick: small enough for CI (two short fits, 2.5-6 min on 2 cores), big enough
               # to learn (bundled test NDCG@10 0.048-0.053 over seeds 42/1/2, popularity 0.020)
               [{"max_len": 50, "d_model": 32, "num_blocks": 1, "epochs": 10, "eval_every": 2,
                 "batch_size": 32, "learning_rate": 2e-3, "progress": False}]),
    # sequence-aware baselines (notebook 10): does SASRec win by attention, or by order alone?
    "markov": (_factory("sequential", "MarkovRecommender"),
               _grid(smoothing=[1.0, 100.0, 1000.0]), [{"smoothing": 100.0}]),
    "sknn": (_factory("sequential", "SequentialKNNRecommender"),
             _grid(k=[20, 50], max_history=[20], decay=[0.7, 0.8, 0.9]),
             [{"k": 20, "max_history": 20, "decay": 0.8}]),
    # GRU4Rec: SASRec's data, loss and loop with a GRU in place of attention (ml-100k, seed 42:
    # learning_rate 3e-3 peaked at validation NDCG@10 0.114 after 24 epochs)
    "gru4rec": (_factory("gru4rec", "GRU4RecRecommender", seeded=True),
                [{"max_len": 50, "d_model": 64, "num_layers": 1, "dropout": 0.2,
                  "learning_rate": 3e-3, "epochs": 100, "patience": 3, "eval_every": 3}],
                # quick (bundled, seed 42): validation NDCG@10 0.028 after 10 epochs, still rising;
                # test 0.027 (popularity 0.020), 9 min on 2 busy cores
                [{"max_len": 50, "d_model": 64, "epochs": 10, "eval_every": 2,
                  "learning_rate": 1e-2, "progress": False}]),
    # BERT4Rec (notebook 11): SASRec's sizes, bidirectional attention, the cloze task. Only
    # ~mask_rate of a window is a target, so it needs more epochs than SASRec. ml-100k, seed 42,
    # validation NDCG@10 after 35 epochs: 0.0926 with mask_rate 0.2 and learning_rate 1e-3,
    # 0.1005 with 0.3 and 2e-3 (the setting kept)
    "bert4rec": (_factory("bert4rec", "BERT4RecRecommender", seeded=True),
                 [{"max_len": 50, "d_model": 64, "num_blocks": 2, "num_heads": 2,
                   "dropout": 0.2, "mask_rate": 0.3, "last_item_rate": 0.1,
                   "learning_rate": 2e-3, "epochs": 300, "patience": 3, "eval_every": 5}],
                 [{"max_len": 50, "d_model": 32, "num_blocks": 1, "epochs": 10, "eval_every": 2,
                   "batch_size": 32, "learning_rate": 2e-3, "mask_rate": 0.3,
                   "progress": False}]),
}


def versions() -> dict[str, str]:
    """Versions of Python and the main libraries, for metrics.json.

    Explained in notebook 05.
    """
    out = {"python": platform.python_version()}
    for name in ("numpy", "pandas", "scipy", "tensorflow", "keras"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def validation_scores(model_name: str, grid: list[dict], split, items: pd.DataFrame,
                      seed: int, progress: bool = True) -> list[dict]:
    """Fit every configuration on train and score it on validation.

    Returns:
        One dict per grid point: parameters (with the early-stopped epoch count), validation
        NDCG and HR at 10, fit time.

    Explained in notebook 05.
    """
    from tqdm.auto import tqdm

    factory = MODELS[model_name][0]
    relevant = relevant_items(split.val)
    results = []
    bar = tqdm(grid, desc=f"{model_name}: tuning on validation", disable=not progress)
    for params in bar:
        set_seed(seed)
        start = time.perf_counter()
        model = factory(params, items, seed)
        if "validation" in inspect.signature(model.fit).parameters:  # early stopping
            model.fit(split.train, validation=split.val)
        else:
            model.fit(split.train)
        recs = model.recommend(list(relevant), k=K)
        score = evaluate_ranking(recs, relevant, k=K, metrics=("ndcg", "hit_rate"))
        chosen = dict(params)
        if getattr(model, "best_epoch_", None):  # retrain for the epochs validation chose
            chosen["epochs"] = int(model.best_epoch_)
        results.append({"params": chosen, f"val_{SELECTION_METRIC}": score[SELECTION_METRIC],
                        f"val_hit_rate@{K}": score[f"hit_rate@{K}"],
                        "fit_seconds": round(time.perf_counter() - start, 2)})
        bar.set_postfix({SELECTION_METRIC: f"{score[SELECTION_METRIC]:.4f}"})
    return results


def run(model_name: str, dataset: str, out: Path, data_dir: str | None = None,
        quick: bool = False, seed: int = 42, progress: bool = True,
        data: tuple[pd.DataFrame, pd.DataFrame] | None = None,
        tie_seed: int | None = None) -> dict:
    """Run the protocol in the module docstring and write the two files into ``out``.

    Args:
        data: ``(ratings, items)`` to use instead of ``load_movielens(dataset, data_dir)``;
            ``dataset`` is then only the label written to metrics.json (used for the
            partial ml-1m run in ``results/ml-1m-partial``).
        tie_seed: None keeps the file order for interactions of a user with equal
            timestamps (ascending item id in MovieLens); a seed orders them at random first
            (:func:`recsys_lib.splits.shuffle_ties`), the tie control of notebook 10.

    Returns:
        The content of metrics.json.

    Raises:
        ValueError: unknown model or dataset name.

    Explained in notebook 05.
    """
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}")
    started = time.perf_counter()
    ratings, items = data if data is not None else load_movielens(dataset, data_dir)
    split = protocol_split(ratings, tie_seed)
    factory, full_grid, quick_grid = MODELS[model_name]
    tuning = validation_scores(model_name, quick_grid if quick else full_grid,
                               split, items, seed, progress)
    best = max(tuning, key=lambda r: r[f"val_{SELECTION_METRIC}"])
    set_seed(seed)
    # Every model, sequence models included, is refitted on train + validation: the validation
    # interaction is each user's most recent one, the closest in time to the test item, so it
    # is worth learning from (for SASRec on ml-100k, seed 42, test NDCG@10 0.116 refitted vs
    # 0.108 when the early-stopped model only reads it as history via ``add_history``).
    final = factory(best["params"], items, seed).fit(pd.concat([split.train, split.val]))
    final_fit = "retrained on train + validation with the chosen parameters"
    test_users = split.test["user_id"].tolist()
    recs = final.recommend(test_users, k=TOP_N_SAVED)
    test = evaluate_ranking(recs, relevant_items(split.test), k=K, metrics=TEST_METRICS)
    result = {
        "model": model_name, "dataset": dataset, "protocol": "leave-last-out, full ranking, "
        "seen items excluded, tuned on validation NDCG@10, retrained on train+validation",
        "test": {k: v for k, v in test.items() if "@" in k},
        "best_params": best["params"], "final_fit": final_fit, "validation": tuning,
        "split": {part: int(len(getattr(split, part))) for part in ("train", "val", "test")}
        | {"users": int(ratings["user_id"].nunique()), "items": int(len(final.items_)),
           "short_users": split.notes["short_users"]},
        "ties": "file order" if tie_seed is None else f"random (seed {tie_seed})",
        "seed": seed, "quick": quick, "wall_seconds": round(time.perf_counter() - started, 1),
        "versions": versions(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [(u, rank, item) for u in test_users for rank, item in enumerate(recs[u], start=1)]
    pd.DataFrame(rows, columns=["user_id", "rank", "item_id"]).to_csv(
        out / "recommendations.csv", index=False)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.benchmark",
        description="Train one model on one dataset (leave-last-out) and evaluate it on test.")
    parser.add_argument("--model", required=True, choices=[*sorted(MODELS), "all"],
                        help="a model, or 'all' (then --out is a folder of model folders)")
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--data-dir", default=None, help="folder holding <dataset>/ files")
    parser.add_argument("--out", required=True, type=Path, help="folder for the two files")
    parser.add_argument("--quick", action="store_true", help="one configuration, for tests")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42],
                        help="one run per seed; with several, each goes to OUT/seed-N")
    parser.add_argument("--tie-seed", type=int, default=None,
                        help="order a user's interactions with equal timestamps at random "
                             "(this seed) instead of by file order: the tie control")
    args = parser.parse_args(argv)
    models = sorted(MODELS) if args.model == "all" else [args.model]
    for model in models:
        for seed in args.seeds:
            out = args.out / model if args.model == "all" else args.out
            out = out / f"seed-{seed}" if len(args.seeds) > 1 else out
            result = run(model, args.dataset, out, args.data_dir, args.quick, seed,
                         tie_seed=args.tie_seed)
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in result["test"].items())
            print(f"{model} on {args.dataset} (seed {seed}): {metrics} "
                  f"({result['wall_seconds']} s)")
            print(f"wrote {out / 'metrics.json'} and {out / 'recommendations.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
