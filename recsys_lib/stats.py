"""Uncertainty for offline comparisons: per-user metrics and paired bootstrap intervals.

Two recommenders evaluated on the same test users give two numbers per user. Their mean
difference is the headline; whether it could be chance depends on how much it varies from
user to user. :func:`paired_bootstrap` resamples the *users* (with replacement, the same
resample for both models, hence "paired") and returns a confidence interval for the mean
difference; :func:`per_user_metric` gives the per-user numbers from ``recommend`` output::

    a = per_user_metric(recs_sasrec, relevant, "ndcg", k=10)
    b = per_user_metric(recs_ease, relevant, "ndcg", k=10)
    result = paired_bootstrap(a, b, seed=0)     # result.difference, result.low, result.high

Explained in notebook 05; notebook 10 uses it for the headline comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_lib.checks import check_float, check_int, check_k
from recsys_lib.metrics import RANKING_METRICS, evaluate_ranking


@dataclass(frozen=True)
class PairedComparison:
    """What :func:`paired_bootstrap` returns.

    Attributes:
        mean_a, mean_b: the two models' means over the users.
        difference: ``mean_a - mean_b``.
        low, high: the bootstrap confidence interval of the difference.
        confidence: e.g. 0.95.
        p_value: two-sided bootstrap p-value of "no difference" (the share of resampled
            differences on the other side of 0, doubled, at most 1).
        n_users, n_resamples: sizes used.

    Explained in notebook 05; notebook 10 uses it for its headline comparison.
    """

    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    n_users: int
    n_resamples: int

    def verdict(self, name_a: str = "A", name_b: str = "B") -> str:
        """One sentence that says what the interval allows one to claim."""
        interval = (f"{self.difference:+.4f}, {self.confidence:.0%} interval "
                    f"[{self.low:+.4f}, {self.high:+.4f}], {self.n_users} users")
        if self.low > 0:
            return f"{name_a} is better than {name_b} ({interval})"
        if self.high < 0:
            return f"{name_a} is worse than {name_b} ({interval})"
        return f"{name_a} and {name_b} cannot be told apart ({interval})"


def per_user_metric(recommendations: Mapping, relevant: Mapping, metric: str = "ndcg",
                    k: int = 10) -> pd.Series:
    """One ranking metric per user, in the order of ``relevant``.

    Users with no relevant item are left out, as in :func:`recsys_lib.metrics.
    evaluate_ranking`, whose mean this Series reproduces exactly; a user without
    recommendations scores 0.

    Args:
        recommendations: user -> ranked list (e.g. ``model.recommend(users, k)``).
        relevant: user -> relevant items (e.g. ``relevant_items(split.test)``).
        metric: one of :data:`recsys_lib.metrics.RANKING_METRICS`.
        k: cut-off, >= 1.

    Returns:
        A float Series indexed by user.

    Raises:
        ValueError: an unknown metric, k < 1, or no user with a relevant item.

    Explained in notebook 05; notebook 10 uses it for its headline comparison.
    """
    k = check_k(k)
    if metric not in RANKING_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {RANKING_METRICS}")
    users = [u for u, items in relevant.items() if len(items)]
    if not users:
        raise ValueError("no user has a relevant item: nothing to evaluate")
    values = [evaluate_ranking({u: recommendations.get(u, [])}, {u: relevant[u]}, k,
                               (metric,))[f"{metric}@{k}"] for u in users]
    return pd.Series(values, index=pd.Index(users, name="user_id"), name=f"{metric}@{k}")


def paired_bootstrap(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray,
                     n_resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> PairedComparison:
    """Paired bootstrap confidence interval for ``mean(a) - mean(b)`` over the same users.

    Args:
        a, b: per-user values of two models. Series are aligned on their index (the users
            must be the same); arrays must have the same length and order.
        n_resamples: bootstrap resamples of the users, >= 100.
        confidence: coverage of the percentile interval, in (0, 1).
        seed: seeds the resampling.

    Returns:
        A :class:`PairedComparison`.

    Raises:
        ValueError: different users or lengths, fewer than 2 users, or NaN values.
        ArgumentError: bad ``n_resamples``, ``confidence`` or ``seed``.

    Explained in notebook 05; notebook 10 uses it for its headline comparison.
    """
    n_resamples = check_int("n_resamples", n_resamples, minimum=100)
    confidence = check_float("confidence", confidence, maximum=1.0)
    seed = check_int("seed", seed, minimum=0)
    a, b = _aligned(a, b)
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 500):  # bounded memory: 500 x n_users at a time
        size = min(500, n_resamples - start)
        means[start:start + size] = diff[rng.integers(0, len(diff), (size, len(diff)))].mean(1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    p_value = min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    return PairedComparison(float(a.mean()), float(b.mean()), float(diff.mean()), float(low),
                            float(high), confidence, float(p_value), len(diff), n_resamples)


def _aligned(a, b) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if not a.index.sort_values().equals(b.index.sort_values()):
            raise ValueError("a and b must hold the same users: compare two models on the "
                             "same test users")
        b = b.loc[a.index]
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D and of the same length, got {a.shape} and "
                         f"{b.shape}")
    if len(a) < 2:
        raise ValueError("need at least 2 users for a bootstrap")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("a or b holds NaN: every user needs a value for both models")
    return a, b
