"""Per-user metrics and the paired bootstrap: exact means, calibrated intervals, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_lib.metrics import evaluate_ranking
from recsys_lib.stats import paired_bootstrap, per_user_metric


def test_per_user_metric_reproduces_evaluate_ranking():
    rng = np.random.default_rng(0)
    relevant = {u: {int(rng.integers(20))} for u in range(50)}
    relevant[50] = set()  # left out, as evaluate_ranking does
    recs = {u: list(rng.permutation(20)[:10]) for u in range(50)}
    for metric in ("ndcg", "hit_rate", "mrr"):
        values = per_user_metric(recs, relevant, metric, k=10)
        assert list(values.index) == list(range(50))
        expected = evaluate_ranking(recs, relevant, 10, (metric,))[f"{metric}@10"]
        assert values.mean() == pytest.approx(expected, abs=1e-12)
    assert per_user_metric({}, {1: {3}}, "hit_rate", 10).tolist() == [0.0]


def test_interval_covers_the_truth_about_as_often_as_promised():
    """Simulation: 200 experiments with a known difference of 0.05; ~95% must cover it."""
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        base = rng.random(300)
        a = base + 0.05 + rng.normal(0, 0.2, 300)
        b = base + rng.normal(0, 0.2, 300)
        result = paired_bootstrap(a, b, n_resamples=400, seed=trial)
        covered += result.low <= 0.05 <= result.high
    assert 0.90 <= covered / 200 <= 0.99


def test_pairing_matters_and_the_verdict_follows_the_interval():
    rng = np.random.default_rng(2)
    shared = rng.random(400) * 2  # large user-to-user variation, common to both models
    a = pd.Series(shared + 0.02 + rng.normal(0, 0.01, 400), index=range(400))
    b = pd.Series(shared, index=range(400))[::-1]  # another order: aligned on the index
    result = paired_bootstrap(a, b, seed=0)
    assert result.difference == pytest.approx(a.mean() - b.mean())
    assert result.low > 0 and result.p_value < 0.01
    assert result.verdict("new", "old").startswith("new is better than old")
    same = paired_bootstrap(b.to_numpy(), b.to_numpy()[::-1] * 0 + b.to_numpy(), seed=0)
    assert same.low == same.high == 0 and "cannot be told apart" in same.verdict()
    worse = paired_bootstrap(b, a, seed=0)
    assert worse.high < 0 and "worse" in worse.verdict()


@pytest.mark.parametrize("a, b, message", [
    (pd.Series([1.0, 2.0], index=[1, 2]), pd.Series([1.0, 2.0], index=[1, 3]), "same users"),
    (np.ones(3), np.ones(4), "same length"),
    (np.ones(1), np.ones(1), "at least 2 users"),
    (np.array([1.0, np.nan]), np.ones(2), "NaN"),
])
def test_bad_input_is_explained(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(np.ones(3), np.ones(3), n_resamples=10)
    with pytest.raises(ValueError, match="unknown metric"):
        per_user_metric({}, {1: {2}}, "auc")
