"""Rating and ranking metrics (notebook 05 derives and compares them).

Ranking metrics take, for one user, a ranked list of recommended items (best first) and the
set of items that are relevant for that user (e.g. their held-out test items), with binary
relevance and 1-based ranks:

* precision@k = hits in the top k / k
* recall@k    = hits in the top k / number of relevant items
* hit rate@k  = 1 if any relevant item is in the top k, else 0
* MRR@k       = 1 / rank of the first relevant item in the top k (0 if none)
* AP@k        = sum over relevant positions r <= k of precision@r, / min(|relevant|, k)
  (trec_eval and keras_rs divide by |relevant| instead; the two agree when |relevant| <= k)
* NDCG@k      = DCG@k / ideal DCG@k, DCG@k = sum over relevant positions r <= k of
  1 / log2(r + 1); the ideal ranking puts min(|relevant|, k) relevant items first.

A list shorter than k is allowed (the missing positions count as misses; precision still
divides by k). A list with a repeated item is an error: a ranking lists each item once.
A user with no relevant item is an error for the per-user functions (every metric would be
undefined or 0 by convention); :func:`evaluate_ranking` skips such users and reports how many.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

RANKING_METRICS = ("precision", "recall", "hit_rate", "mrr", "map", "ndcg")


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _hits(recommended: Sequence, relevant: Iterable, k: int) -> tuple[np.ndarray, int]:
    """Boolean hits of the top k and the number of relevant items, after checking input."""
    k = _check_k(k)
    relevant = set(relevant)
    if not relevant:
        raise ValueError("the user has no relevant items, so the metric is undefined; "
                         "leave such users out (evaluate_ranking does and counts them)")
    top = list(recommended)[:k]
    if len(set(top)) != len(top):
        dup = pd.Series(top)[pd.Series(top).duplicated()].unique().tolist()
        raise ValueError(f"the recommended list repeats item(s) {dup[:5]}; a ranking must "
                         "list each item once")
    return np.fromiter((item in relevant for item in top), dtype=bool, count=len(top)), len(
        relevant)


def precision_at_k(recommended: Sequence, relevant: Iterable, k: int) -> float:
    """Share of the top k that is relevant (divides by k even for shorter lists)."""
    hits, _ = _hits(recommended, relevant, k)
    return float(hits.sum() / k)


def recall_at_k(recommended: Sequence, relevant: Iterable, k: int) -> float:
    """Share of the relevant items that appear in the top k."""
    hits, n_relevant = _hits(recommended, relevant, k)
    return float(hits.sum() / n_relevant)


def hit_rate_at_k(recommended: Sequence, relevant: Iterable, k: int) -> float:
    """1.0 if at least one relevant item is in the top k, else 0.0."""
    hits, _ = _hits(recommended, relevant, k)
    return float(hits.any())


def mrr_at_k(recommended: Sequence, relevant: Iterable, k: int) -> float:
    """Reciprocal of the 1-based rank of the first relevant item in the top k (0 if none)."""
    hits, _ = _hits(recommended, relevant, k)
    first = np.flatnonzero(hits)
    return float(1.0 / (first[0] + 1)) if first.size else 0.0


def average_precision_at_k(recommended: Sequence, relevant: Iterable, k: int) -> float:
    """Mean of precision@r over the relevant positions r <= k, normalised by min(|rel|, k)."""
    hits, n_relevant = _hits(recommended, relevant, k)
    ranks = np.arange(1, len(hits) + 1)
    precision_at_hits = np.cumsum(hits)[hits] / ranks[hits]
    return float(precision_at_hits.sum() / min(n_relevant, k))


def ndcg_at_k(recommended: Sequence, relevant: Iterable, k: int) -> float:
    """DCG@k / ideal DCG@k with binary gains and discount 1 / log2(rank + 1)."""
    hits, n_relevant = _hits(recommended, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = discounts[: len(hits)][hits].sum()
    ideal = discounts[: min(n_relevant, k)].sum()
    return float(dcg / ideal)


_PER_USER = {
    "precision": precision_at_k, "recall": recall_at_k, "hit_rate": hit_rate_at_k,
    "mrr": mrr_at_k, "map": average_precision_at_k, "ndcg": ndcg_at_k,
}


def evaluate_ranking(
    recommendations: Mapping, relevant: Mapping, k: int = 10,
    metrics: Sequence[str] = RANKING_METRICS,
) -> dict[str, float]:
    """Average per-user ranking metrics over the users that have relevant items.

    Args:
        recommendations: user -> ranked list of recommended items (best first).
        relevant: user -> collection of relevant items (e.g. the user's test items). Its
            users are the ones evaluated.
        k: cut-off, >= 1.
        metrics: names from ``RANKING_METRICS``.

    Returns:
        ``{"ndcg@10": ..., ...}`` averaged over evaluated users, plus ``"users"`` (how many
        were evaluated) and ``"users_without_relevant"`` (users in ``relevant`` with an
        empty collection, left out of the averages). A user in ``relevant`` who has no
        entry in ``recommendations`` is evaluated with an empty list (scores 0): a model
        that cannot recommend for a user is not excused.

    Raises:
        ValueError: k < 1, an unknown metric name, or no user with a relevant item.
    """
    _check_k(k)
    unknown = [m for m in metrics if m not in _PER_USER]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {RANKING_METRICS}")
    users = [u for u, items in relevant.items() if len(items)]
    if not users:
        raise ValueError("no user has a relevant item: nothing to evaluate")
    totals = dict.fromkeys(metrics, 0.0)
    for user in users:
        ranked = recommendations.get(user, ())
        for name in metrics:
            totals[name] += _PER_USER[name](ranked, relevant[user], k)
    result = {f"{name}@{k}": totals[name] / len(users) for name in metrics}
    result["users"] = len(users)
    result["users_without_relevant"] = len(relevant) - len(users)
    return result


def relevant_items(interactions: pd.DataFrame) -> dict:
    """user_id -> set of item_id, e.g. from a test split."""
    return interactions.groupby("user_id")["item_id"].agg(set).to_dict()


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Root mean squared error of rating predictions."""
    t, p = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Mean absolute error of rating predictions."""
    t, p = _paired(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def _paired(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty")
    if np.isnan(p).any():
        raise ValueError(f"y_pred has {int(np.isnan(p).sum())} NaN prediction(s)")
    return t, p
