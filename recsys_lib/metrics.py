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
divides by k). A list with a repeated item is an error: a ranking lists each item once. Both
the list and the relevant items must be collections (list, tuple, set, array): a string is
refused, since it would be read as a collection of its characters.
A user with no relevant item is an error for the per-user functions (every metric would be
undefined or 0 by convention); :func:`evaluate_ranking` skips such users and reports how many.

Beyond accuracy, over all users' lists: :func:`catalogue_coverage` (share of the catalogue
recommended to someone) and :func:`novelty` (mean self-information of recommended items).

:func:`sampled_ranking_metrics` implements the *sampled-negative* protocol (rank the held-out
item among a few random unseen items instead of the whole catalogue) so that notebook 05 can
show how much it inflates the numbers; the course reports full-ranking metrics.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.checks import ArgumentError, check_int, check_k

RANKING_METRICS = ("precision", "recall", "hit_rate", "mrr", "map", "ndcg")


def _check_items(name: str, items: object) -> None:
    """Refuse a string, bytes or anything else that is not a collection of item ids."""
    if isinstance(items, str | bytes | bytearray):
        raise ArgumentError(
            f"{name} must be a collection of item ids (a list, set or array), got the "
            f"{type(items).__name__} {items!r:.60}, which would count as its characters; "
            f"wrap a single item in a list: [{items!r:.60}]"
        )
    if not isinstance(items, Collection):
        raise ArgumentError(
            f"{name} must be a collection of item ids (a list, set or array), got "
            f"{type(items).__name__} {items!r:.60}; pass list(...) of it"
        )


def _hits(recommended: Sequence, relevant: Collection, k: int) -> tuple[np.ndarray, int]:
    """Boolean hits of the top k and the number of relevant items, after checking input."""
    k = check_k(k)
    _check_items("recommended", recommended)
    _check_items("relevant", relevant)
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


def precision_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """Share of the top k that is relevant (divides by k even for shorter lists).

    Args:
        recommended: the user's ranked item ids, best first (a list, tuple or array; a
            string is refused, it is not a list of items).
        relevant: the user's relevant item ids (a set, list or array; not a string).
        k: cut-off, an integer >= 1.

    Returns:
        precision@k = hits in the top k / k, in [0, 1].

    Raises:
        ValueError: ``k`` is not an integer >= 1 (ArgumentError), the top k repeats an item,
            or ``relevant`` is empty.
        TypeError: ``recommended`` or ``relevant`` is a string, bytes or not a collection.

    Explained in notebook 05.
    """
    hits, _ = _hits(recommended, relevant, k)
    return float(hits.sum() / k)


def recall_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """Share of the relevant items that appear in the top k.

    Args:
        recommended: the user's ranked item ids, best first (a list, tuple or array; a
            string is refused, it is not a list of items).
        relevant: the user's relevant item ids (a set, list or array; not a string).
        k: cut-off, an integer >= 1.

    Returns:
        recall@k = hits in the top k / |relevant|, in [0, 1].

    Raises:
        ValueError: ``k`` is not an integer >= 1 (ArgumentError), the top k repeats an item,
            or ``relevant`` is empty.
        TypeError: ``recommended`` or ``relevant`` is a string, bytes or not a collection.

    Explained in notebook 05.
    """
    hits, n_relevant = _hits(recommended, relevant, k)
    return float(hits.sum() / n_relevant)


def hit_rate_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """1.0 if at least one relevant item is in the top k, else 0.0.

    Args:
        recommended: the user's ranked item ids, best first (a list, tuple or array; a
            string is refused, it is not a list of items).
        relevant: the user's relevant item ids (a set, list or array; not a string).
        k: cut-off, an integer >= 1.

    Returns:
        1.0 or 0.0.

    Raises:
        ValueError: ``k`` is not an integer >= 1 (ArgumentError), the top k repeats an item,
            or ``relevant`` is empty.
        TypeError: ``recommended`` or ``relevant`` is a string, bytes or not a collection.

    Explained in notebook 05.
    """
    hits, _ = _hits(recommended, relevant, k)
    return float(hits.any())


def mrr_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """Reciprocal of the 1-based rank of the first relevant item in the top k (0 if none).

    Args:
        recommended: the user's ranked item ids, best first (a list, tuple or array; a
            string is refused, it is not a list of items).
        relevant: the user's relevant item ids (a set, list or array; not a string).
        k: cut-off, an integer >= 1.

    Returns:
        1 / rank, or 0.0 when no relevant item is in the top k.

    Raises:
        ValueError: ``k`` is not an integer >= 1 (ArgumentError), the top k repeats an item,
            or ``relevant`` is empty.
        TypeError: ``recommended`` or ``relevant`` is a string, bytes or not a collection.

    Explained in notebook 05.
    """
    hits, _ = _hits(recommended, relevant, k)
    first = np.flatnonzero(hits)
    return float(1.0 / (first[0] + 1)) if first.size else 0.0


def average_precision_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """Mean of precision@r over the relevant positions r <= k, normalised by min(|rel|, k).

    Args:
        recommended: the user's ranked item ids, best first (a list, tuple or array; a
            string is refused, it is not a list of items).
        relevant: the user's relevant item ids (a set, list or array; not a string).
        k: cut-off, an integer >= 1.

    Returns:
        AP@k in [0, 1].

    Raises:
        ValueError: ``k`` is not an integer >= 1 (ArgumentError), the top k repeats an item,
            or ``relevant`` is empty.
        TypeError: ``recommended`` or ``relevant`` is a string, bytes or not a collection.

    Explained in notebook 05.
    """
    hits, n_relevant = _hits(recommended, relevant, k)
    ranks = np.arange(1, len(hits) + 1)
    precision_at_hits = np.cumsum(hits)[hits] / ranks[hits]
    return float(precision_at_hits.sum() / min(n_relevant, k))


def ndcg_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """DCG@k / ideal DCG@k with binary gains and discount 1 / log2(rank + 1).

    Args:
        recommended: the user's ranked item ids, best first (a list, tuple or array; a
            string is refused, it is not a list of items).
        relevant: the user's relevant item ids (a set, list or array; not a string).
        k: cut-off, an integer >= 1.

    Returns:
        NDCG@k in [0, 1].

    Raises:
        ValueError: ``k`` is not an integer >= 1 (ArgumentError), the top k repeats an item,
            or ``relevant`` is empty.
        TypeError: ``recommended`` or ``relevant`` is a string, bytes or not a collection.

    Explained in notebook 05.
    """
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

    Explained in notebook 05.
    """
    check_k(k)
    unknown = [m for m in metrics if m not in _PER_USER]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {RANKING_METRICS}")
    for user, items in relevant.items():
        _check_items(f"relevant[{user!r}]", items)
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
    """user_id -> set of item_id, e.g. from a test split.

    Explained in notebook 05.
    """
    return interactions.groupby("user_id")["item_id"].agg(set).to_dict()


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Root mean squared error of rating predictions: sqrt(mean((y_true - y_pred) ** 2)).

    Args:
        y_true: the true ratings.
        y_pred: the predicted ratings, in the same order and shape.

    Returns:
        The RMSE, in the ratings' unit.

    Raises:
        ValueError: different shapes, empty input, or a missing (NaN) or infinite value in
            either argument (the message names it).
        TypeError: values that are not numbers.

    Explained in notebook 05.
    """
    t, p = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Mean absolute error of rating predictions: mean(|y_true - y_pred|).

    Args:
        y_true: the true ratings.
        y_pred: the predicted ratings, in the same order and shape.

    Returns:
        The MAE, in the ratings' unit.

    Raises:
        ValueError: different shapes, empty input, or a missing (NaN) or infinite value in
            either argument (the message names it).
        TypeError: values that are not numbers.

    Explained in notebook 05.
    """
    t, p = _paired(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def _paired(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _numbers("y_true", y_true), _numbers("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty")
    _check_finite("y_true", t)
    _check_finite("y_pred", p)
    return t, p


def _numbers(name: str, values) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ArgumentError(f"{name} must hold numbers (ratings), got {values!r:.60}") from err


def _check_finite(name: str, values: np.ndarray) -> None:
    """Refuse NaN (a missing rating or prediction) and infinity, naming the argument."""
    for bad, what in ((np.isnan(values), "missing (NaN)"), (np.isinf(values), "infinite")):
        if bad.any():
            raise ValueError(
                f"{name} has {int(bad.sum())} {what} value(s), e.g. at position "
                f"{int(np.flatnonzero(bad)[0])}, so the error is undefined; drop those rows "
                "from both y_true and y_pred, or fill the predictions (e.g. with the mean "
                "rating) first"
            )


# ------------------------------------------------------------------------ beyond accuracy
def _top_lists(recommendations: Mapping, k: int | None) -> list[list]:
    if k is not None:
        check_k(k)
    for user, items in recommendations.items():
        _check_items(f"recommendations[{user!r}]", items)
    return [list(items)[:k] for items in recommendations.values()]


def catalogue_coverage(recommendations: Mapping, n_items: int, k: int | None = None) -> float:
    """Share of the catalogue that appears in at least one user's list.

    ``coverage = |union over users u of L_u| / n_items``, where ``L_u`` is the (first ``k``
    items of the) list of user ``u``. A non-personalised model such as popularity covers
    little more than ``k`` items; a random one covers almost everything.

    Args:
        recommendations: user -> ranked list of items (e.g. ``model.recommend(users, k)``).
        n_items: size of the catalogue the lists were drawn from (e.g. ``len(model.items_)``).
        k: look only at the first ``k`` items of each list (default: the whole list).

    Returns:
        A share in [0, 1].

    Raises:
        ValueError: ``n_items < 1``, ``k < 1``, or more distinct recommended items than
            ``n_items`` (the catalogue size is wrong).

    Explained in notebook 05.
    """
    n_items = check_int("n_items", n_items)
    distinct = {item for items in _top_lists(recommendations, k) for item in items}
    if len(distinct) > n_items:
        raise ValueError(f"{len(distinct)} distinct items were recommended but n_items is "
                         f"{n_items}; pass the size of the whole catalogue")
    return len(distinct) / int(n_items)


def novelty(recommendations: Mapping, item_popularity: Mapping | pd.Series, n_users: int,
            k: int | None = None) -> float:
    """Mean self-information of the recommended items, in bits (Zhou et al. 2010).

    An item that a share ``p_i = pop_i / n_users`` of the training users interacted with
    carries ``-log2(p_i)`` bits of "surprise": 0 bits for an item everybody has seen,
    ``log2(n_users)`` bits for an item only one user has seen. Then

        novelty = (1 / |U|) * sum over users u of (1 / |L_u|) * sum over i in L_u of -log2(p_i)

    over the users ``U`` with a non-empty list ``L_u`` (each user weighs the same). An item
    with popularity 0 (possible for content-based models, which can recommend items nobody
    interacted with) is counted as if one user had seen it (``log2(n_users)`` bits, the most
    a seen item can have), so that the mean stays finite.

    Args:
        recommendations: user -> ranked list of items.
        item_popularity: item -> number of distinct training users who interacted with it
            (e.g. ``train.groupby("item_id")["user_id"].nunique()``); missing items count 0.
        n_users: number of training users (the denominator of ``p_i``).
        k: look only at the first ``k`` items of each list (default: the whole list).

    Returns:
        Mean self-information in bits, in [0, log2(n_users)].

    Raises:
        ValueError: ``n_users < 1``, a popularity below 0 or above ``n_users``, ``k < 1``,
            or no non-empty list.

    Explained in notebook 05.
    """
    n_users = check_int("n_users", n_users)
    popularity = pd.Series(item_popularity, dtype=float) if not isinstance(
        item_popularity, pd.Series) else item_popularity.astype(float)
    if (popularity < 0).any() or (popularity > n_users).any():
        bad = popularity[(popularity < 0) | (popularity > n_users)]
        raise ValueError(f"item_popularity must count users (0..{n_users}), got "
                         f"{bad.head(3).to_dict()}; count distinct users per item")
    lists = [items for items in _top_lists(recommendations, k) if items]
    if not lists:
        raise ValueError("every recommendation list is empty: novelty is undefined")
    per_user = []
    for items in lists:
        pop = popularity.reindex(items).fillna(0.0).to_numpy()
        per_user.append(np.mean(-np.log2(np.maximum(pop, 1.0) / n_users)))
    return float(np.mean(per_user))


# ------------------------------------------------------------- the sampled-negative protocol
def rank_of_item(scores: np.ndarray, target: int, candidates: np.ndarray | None = None) -> int:
    """1-based rank of column ``target`` among itself and the ``candidates`` columns.

    Higher scores rank first; a tie is broken by column index (the lower index ranks first),
    the rule :func:`recsys_lib.models.top_k_indices` uses inside a top-k list.

    Args:
        scores: (n_items,) scores of one user.
        target: column index of the held-out item.
        candidates: column indices it competes with (``target`` itself, if present, is
            ignored); ``None`` means every other column (full ranking, nothing excluded).

    Returns:
        ``1 + number of candidates ranked above the target``.

    Raises:
        ValueError: scores not 1-D, an index out of range, or a NaN score.

    Explained in notebook 05.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D (one user), got shape {scores.shape}")
    n_items = len(scores)
    if not 0 <= int(target) < n_items:
        raise ValueError(f"target {target} is outside 0..{n_items - 1}")
    cand = np.arange(n_items) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if cand.size and (cand.min() < 0 or cand.max() >= n_items):
        raise ValueError(f"candidates must be column indices in 0..{n_items - 1}")
    return int(_count_above(scores, int(target), cand)) + 1


def _count_above(scores: np.ndarray, target: int, cand: np.ndarray) -> int:
    own = scores[target]
    other = scores[cand]
    if np.isnan(own) or np.isnan(other).any():
        raise ValueError("scores contain NaN: a NaN cannot be ranked")
    above = (other > own) | ((other == own) & (cand < target))
    return int(above.sum())


def _metrics_from_ranks(ranks: np.ndarray, k: int, metrics: Sequence[str]) -> dict[str, float]:
    hit = ranks <= k
    with np.errstate(divide="ignore"):
        values = {
            "hit_rate": hit.astype(float),
            "ndcg": np.where(hit, 1.0 / np.log2(np.minimum(ranks, k) + 1.0), 0.0),
            "mrr": np.where(hit, 1.0 / np.minimum(ranks, k), 0.0),
        }
    return {f"{name}@{k}": float(values[name].mean()) for name in metrics}


SAMPLED_METRICS = ("hit_rate", "ndcg", "mrr")


def sampled_ranking_metrics(
    model: Any, test: pd.DataFrame, k: int = 10, n_negatives: int | None = 100,
    seed: int = 0, *, metrics: Sequence[str] = SAMPLED_METRICS,
    scores: np.ndarray | None = None, return_ranks: bool = False,
) -> dict[str, float] | tuple[dict[str, float], np.ndarray]:
    """HR@k, NDCG@k and MRR@k of held-out items ranked among sampled negatives.

    The protocol of NCF-style papers (and the one Krichene & Rendle, KDD 2020, warn about):
    for each held-out (user, item) row of ``test``, draw ``n_negatives`` items uniformly,
    without replacement, from the catalogue items the user has **not** interacted with (not
    in the model's training row of that user, not among the user's test items), and rank
    the held-out item among those ``n_negatives + 1`` items by ``model.score``. Then, with
    that 1-based rank ``r`` (ties: lower column index first, see :func:`rank_of_item`),
    ``HR@k = [r <= k]``, ``NDCG@k = [r <= k] / log2(r + 1)``, ``MRR@k = [r <= k] / r``,
    averaged over the rows. With one held-out item per user (leave-last-out) these are
    exactly the per-user metrics of this module.

    ``n_negatives=None`` ranks the held-out item among *all* items the user has not
    interacted with: the honest full-ranking protocol, computed the same way. The sampled
    candidates are a subset of those, so a row's sampled rank is never worse than its full
    rank and every sampled metric is >= its full-ranking value.

    Args:
        model: a fitted :class:`recsys_lib.models.Recommender` (anything with ``score``,
            ``users_``, ``items_`` and ``matrix_``).
        test: ``user_id, item_id`` rows; every user must be known to the model. An item the
            model has never seen cannot be scored: its row counts as a miss (rank ``inf``)
            and is counted in ``unknown_items``.
        k: cut-off, >= 1.
        n_negatives: negatives per row (>= 1), or ``None`` for all non-interacted items. A
            user with fewer candidates than that gets all of them.
        seed: seeds the draws; the same seed gives the same negatives.
        metrics: names from ``SAMPLED_METRICS``.
        scores: optional precomputed ``model.score(test["user_id"].unique())`` (rows in that
            order), to reuse one scoring for several values of ``n_negatives``.
        return_ranks: also return the rank of every row.

    Returns:
        ``{"hit_rate@10": ..., "ndcg@10": ..., "mrr@10": ..., "pairs": rows evaluated,
        "unknown_items": rows whose item the model does not know}``; with
        ``return_ranks``, a tuple ``(that dict, ranks)``, ranks a float array in the order
        of ``test``'s rows.

    Raises:
        ValueError: bad ``k`` / ``n_negatives`` / metric name, an empty ``test``, missing
            columns, an unknown user, or ``scores`` of the wrong shape.

    Explained in notebook 05.
    """
    k = check_k(k)
    if n_negatives is not None:
        try:
            n_negatives = check_int("n_negatives", n_negatives)
        except ArgumentError as err:
            raise ArgumentError(f"{err}; or pass None to rank among all unseen items") from None
    unknown = [m for m in metrics if m not in SAMPLED_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {SAMPLED_METRICS}")
    if not isinstance(test, pd.DataFrame) or test.empty:
        raise ValueError("test must be a non-empty DataFrame with user_id and item_id")
    missing = {"user_id", "item_id"} - set(test.columns)
    if missing:
        raise ValueError(f"test is missing column(s) {sorted(missing)}")
    users = test["user_id"].unique()
    user_idx = model._user_indices(users)  # raises a clear error for unknown users
    n_items = len(model.items_)
    if scores is not None:
        scores = np.asarray(scores)
        if scores.shape != (len(users), n_items):
            raise ValueError(f"scores must have shape (test users, catalogue items) = "
                             f"{(len(users), n_items)}, got {scores.shape}")
    known = test["item_id"].isin(model.items_.ids_).to_numpy()
    item_idx = np.full(len(test), -1, dtype=np.int64)
    item_idx[known] = model.items_.transform(test.loc[known, "item_id"])
    user_of_row = pd.Series(np.arange(len(users)), index=users).loc[test["user_id"]].to_numpy()
    rows_of_user = pd.Series(np.arange(len(test))).groupby(user_of_row).indices
    rng = np.random.default_rng(seed)
    ranks = np.full(len(test), np.inf)
    everything = np.arange(n_items)
    batch = int(getattr(model, "batch_size", 1024))
    for start in range(0, len(users), batch):
        stop = min(start + batch, len(users))
        block = (scores[start:stop] if scores is not None
                 else np.asarray(model.score(users[start:stop]), dtype=np.float64))
        for u in range(start, stop):
            rows = rows_of_user[u]
            targets = item_idx[rows]
            seen = model.matrix_[user_idx[u]].indices
            pool = np.setdiff1d(everything, np.concatenate([seen, targets[targets >= 0]]))
            for pos, target in zip(rows, targets, strict=True):
                if target < 0:
                    continue  # an item the model cannot score: a miss
                if n_negatives is None or n_negatives >= len(pool):
                    cand = pool
                else:
                    cand = rng.choice(pool, size=n_negatives, replace=False)
                ranks[pos] = _count_above(block[u - start], int(target), cand) + 1
    result = _metrics_from_ranks(ranks, k, metrics)
    result["pairs"] = len(test)
    result["unknown_items"] = int((~known).sum())
    return (result, ranks) if return_ranks else result
