"""Train the course's SASRec and export it as a serving bundle (notebook 12).

    python -m recsys_lib.serving.export --dataset bundled --quick --out bundles/quick
    python -m recsys_lib.serving.export --dataset ml-100k --data-dir ../shared/datasets \\
        --out bundles/ml-100k
    python -m recsys_lib.serving.export --dataset bundled --model my.keras --out bundles/mine

Protocol (the course's, :mod:`recsys_lib.benchmark`): leave-last-out split; SASRec with the
benchmark's configuration (its quick one with ``--quick``) trained on train, early-stopped on
validation NDCG@10; the test metrics of the bundle's model come from the full-ranking protocol
with each test user's train + validation interactions as the history. With ``--model`` the
given ``.keras`` file is evaluated and exported instead of training one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_lib.checks import check_int
from recsys_lib.config import DEFAULT_SEED, import_tensorflow_quietly, set_seed
from recsys_lib.serving.bundle import export_bundle


def sasrec_params(quick: bool, epochs: int | None = None) -> dict:
    """The benchmark's SASRec configuration (quick or full), with ``epochs`` overridden.

    Notebook 12 explains it.
    """
    from recsys_lib.benchmark import MODELS

    _, full, quick_grid = MODELS["sasrec"]
    params = dict((quick_grid if quick else full)[0])
    if epochs is not None:
        params["epochs"] = check_int("epochs", epochs)
    params["progress"] = False
    return params


def user_histories(recommender, interactions: pd.DataFrame) -> dict:
    """user_id -> item-index history (1-based, oldest first) of items the model knows.

    Notebook 12 explains it.
    """
    from recsys_lib.splits import order_by_user_time

    ordered = order_by_user_time(interactions)
    ordered = ordered[ordered["item_id"].isin(recommender.items_.ids_)]
    index = recommender.items_.transform(ordered["item_id"]) + 1
    return {user: group for user, group in
            pd.Series(index, index=ordered["user_id"].to_numpy()).groupby(level=0)}


def ranking_metrics_on_test(recommender, history: pd.DataFrame, test: pd.DataFrame,
                            k: int = 10) -> dict:
    """Full-ranking test metrics at ``k`` with each user's ``history`` read by the model.

    Args:
        recommender: a fitted or loaded sequence recommender.
        history: the interactions before the test ones (train + validation).
        test: one held-out interaction per user.
        k: the cut-off.

    Returns:
        ``{"hit_rate@10": ..., "ndcg@10": ..., "mrr@10": ..., "recall@10": ..., "users": n}``.

    Notebook 12 explains it.
    """
    from recsys_lib.benchmark import TEST_METRICS
    from recsys_lib.metrics import evaluate_ranking, relevant_items

    histories = user_histories(recommender, history)
    users = [u for u in test["user_id"].unique() if u in histories]
    recs = {}
    for start in range(0, len(users), 512):
        chunk = users[start:start + 512]
        scores = recommender.score_histories([histories[u].to_numpy() for u in chunk])
        for row, user in enumerate(chunk):
            scores[row, histories[user].to_numpy() - 1] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        for row, user in enumerate(chunk):
            recs[user] = recommender.items_.inverse_transform(top[row]).tolist()
    result = evaluate_ranking(recs, relevant_items(test), k=k, metrics=TEST_METRICS)
    return {key: round(float(value), 6) if "@" in key else int(value)
            for key, value in result.items()}


def train_and_export(dataset: str, out: str | Path, *, data_dir: str | None = None,
                     quick: bool = False, model_path: str | None = None,
                     epochs: int | None = None, seed: int = DEFAULT_SEED,
                     data: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> Path:
    """Train (or load) SASRec on ``dataset`` with the course protocol and export a bundle.

    Args:
        dataset: a name of :data:`recsys_lib.data.DATASET_NAMES` (``"bundled"`` is offline).
        out: the bundle folder.
        data_dir: where downloaded datasets are cached.
        quick: the benchmark's quick SASRec configuration (minutes on 2 cores).
        model_path: a ``.keras`` file saved by SASRecRecommender to export instead.
        epochs: override the maximum number of epochs.
        seed: the training seed.
        data: ``(ratings, items)`` to use instead of ``load_movielens(dataset, data_dir)``;
            ``dataset`` is then only the name written to the manifest (the tests use it).

    Returns:
        The bundle folder.

    Raises:
        ValueError: unknown dataset; a bad model file (from SASRecRecommender.load).
        ArgumentError: a bad ``epochs``.

    Notebook 12 explains it.
    """
    from recsys_lib.benchmark import protocol_split
    from recsys_lib.data import load_movielens

    ratings, items = data if data is not None else load_movielens(dataset, data_dir)
    split = protocol_split(ratings)  # the benchmark's leave-last-out split
    import_tensorflow_quietly()
    from recsys_lib.models.sasrec import SASRecRecommender

    set_seed(seed)
    if model_path is not None:
        recommender = SASRecRecommender.load(str(model_path))
        training = {"model_file": str(model_path)}
    else:
        params = sasrec_params(quick, epochs)
        recommender = SASRecRecommender(**params, seed=seed)
        started = time.perf_counter()
        recommender.fit(split.train, validation=split.val)
        training = {"params": params, "best_epoch": int(recommender.best_epoch_ or 0),
                    "fit_seconds": round(time.perf_counter() - started, 1), "seed": seed}
    history = pd.concat([split.train, split.val])
    metrics = ranking_metrics_on_test(recommender, history, split.test)
    metrics |= {"training": training, "quick": quick}
    return export_bundle(recommender, history, items, out, dataset=dataset, metrics=metrics)


def main(argv: list[str] | None = None) -> int:
    """Command line: train (or load) SASRec and write a bundle; prints its version and metrics.

    Notebook 12 explains it.
    """
    from recsys_lib.data import DATASET_NAMES
    from recsys_lib.serving.bundle import read_manifest

    parser = argparse.ArgumentParser(prog="python -m recsys_lib.serving.export",
                                     description="Train SASRec and export a serving bundle.")
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--data-dir", default=None, help="folder holding <dataset>/ files")
    parser.add_argument("--quick", action="store_true",
                        help="the benchmark's quick SASRec configuration")
    parser.add_argument("--model", default=None, help="export this .keras file instead")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", required=True, type=Path, help="the bundle folder")
    args = parser.parse_args(argv)
    out = train_and_export(args.dataset, args.out, data_dir=args.data_dir, quick=args.quick,
                           model_path=args.model, epochs=args.epochs, seed=args.seed)
    manifest = read_manifest(out)
    shown = {k: v for k, v in manifest["metrics"].items() if "@" in k}
    print(f"wrote bundle {out} (version {manifest['model_version']}); test "
          + ", ".join(f"{k}={v:.4f}" for k, v in shown.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
