"""Ranking and rating metrics: hand-computed cases, an independent implementation, bad input."""

import math

import numpy as np
import pytest

from recsys_lib.metrics import (
    RANKING_METRICS,
    average_precision_at_k,
    evaluate_ranking,
    hit_rate_at_k,
    mae,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    relevant_items,
    rmse,
)

REC = ["a", "b", "c", "d", "e"]
REL = {"b", "d", "z"}  # "z" is relevant but never recommended


def test_hand_computed_values_at_k3():
    assert precision_at_k(REC, REL, 3) == pytest.approx(1 / 3)
    assert recall_at_k(REC, REL, 3) == pytest.approx(1 / 3)
    assert hit_rate_at_k(REC, REL, 3) == 1.0
    assert mrr_at_k(REC, REL, 3) == pytest.approx(1 / 2)
    assert average_precision_at_k(REC, REL, 3) == pytest.approx((1 / 2) / 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(REC, REL, 3) == pytest.approx((1 / math.log2(3)) / ideal)


def test_hand_computed_values_at_k5():
    assert precision_at_k(REC, REL, 5) == pytest.approx(2 / 5)
    assert recall_at_k(REC, REL, 5) == pytest.approx(2 / 3)
    assert average_precision_at_k(REC, REL, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(REC, REL, 5) == pytest.approx(dcg / ideal)


def test_perfect_and_empty_rankings():
    for fn in (recall_at_k, hit_rate_at_k, mrr_at_k, average_precision_at_k, ndcg_at_k):
        assert fn(["x", "y"], {"x", "y"}, 2) == pytest.approx(1.0)
        assert fn([], {"x"}, 10) == 0.0
    assert precision_at_k(["x"], {"x"}, 10) == pytest.approx(0.1)  # shorter list: still / k
    # one relevant item at rank r: NDCG = 1 / log2(r + 1), MRR = 1 / r
    assert ndcg_at_k(["a", "b", "x"], {"x"}, 10) == pytest.approx(1 / math.log2(4))
    assert mrr_at_k(["a", "b", "x"], {"x"}, 10) == pytest.approx(1 / 3)
    assert hit_rate_at_k(["a", "b", "x"], {"x"}, 2) == 0.0


@pytest.mark.parametrize("fn", [precision_at_k, recall_at_k, hit_rate_at_k, mrr_at_k,
                                average_precision_at_k, ndcg_at_k])
def test_bad_input_is_refused_clearly(fn):
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        fn(REC, REL, 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        fn(REC, REL, 2.5)
    with pytest.raises(ValueError, match=r"repeats item\(s\) \['a'\]"):
        fn(["a", "b", "a"], REL, 3)
    with pytest.raises(ValueError, match="no relevant items"):
        fn(REC, set(), 3)


def test_duplicates_after_the_cutoff_are_ignored():
    assert precision_at_k(["a", "b", "a"], {"b"}, 2) == 0.5


def test_evaluate_ranking_counts_users_as_documented():
    recs = {1: ["a", "b"], 2: ["c"], 4: ["x"]}  # user 4 is not a test user: ignored
    relevant = {1: {"b"}, 2: {"d"}, 3: {"a"}, 5: set()}  # user 3 has no recs: scores 0
    result = evaluate_ranking(recs, relevant, k=2, metrics=("hit_rate", "mrr"))
    assert result["users"] == 3 and result["users_without_relevant"] == 1
    assert result["hit_rate@2"] == pytest.approx(1 / 3)
    assert result["mrr@2"] == pytest.approx(0.5 / 3)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_ranking(recs, relevant, metrics=("auc",))
    with pytest.raises(ValueError, match="no user has a relevant item"):
        evaluate_ranking(recs, {1: set()})
    with pytest.raises(ValueError, match="k must be >= 1"):
        evaluate_ranking(recs, relevant, k=0)


def test_relevant_items_groups_by_user():
    import pandas as pd

    test = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10]})
    assert relevant_items(test) == {1: {10, 11}, 2: {10}}


def test_rating_metrics():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        rmse([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        mae([], [])
    with pytest.raises(ValueError, match="NaN"):
        rmse([1.0], [float("nan")])


def test_matches_keras_rs_on_random_rankings():
    """keras_rs.metrics is an independent implementation of the same definitions."""
    keras_rs = pytest.importorskip("keras_rs")
    rng = np.random.default_rng(0)
    n_users, n_items = 64, 40
    scores = rng.permutation(n_users * n_items).reshape(n_users, n_items).astype("float32")
    truth = (rng.random((n_users, n_items)) < 0.1).astype("float32")
    truth[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # nobody empty
    recs = {u: list(np.argsort(-scores[u], kind="stable")) for u in range(n_users)}
    relevant = {u: set(np.flatnonzero(truth[u])) for u in range(n_users)}
    pairs = {"ndcg": keras_rs.metrics.NDCG, "mrr": keras_rs.metrics.MeanReciprocalRank,
             "map": keras_rs.metrics.MeanAveragePrecision,
             "precision": keras_rs.metrics.PrecisionAtK, "recall": keras_rs.metrics.RecallAtK}
    for k in (1, 5, 10):
        ours = evaluate_ranking(recs, relevant, k=k)
        # keras_rs (like trec_eval) divides AP by |relevant|; ours by min(|relevant|, k).
        ours[f"map@{k}"] = np.mean([average_precision_at_k(recs[u], relevant[u], k)
                                      * min(len(relevant[u]), k) / len(relevant[u])
                                      for u in range(n_users)])
        for name, metric_cls in pairs.items():
            metric = metric_cls(k=k)
            metric.update_state(truth, scores)
            assert ours[f"{name}@{k}"] == pytest.approx(float(metric.result()), rel=1e-5), (
                name, k)
    assert set(RANKING_METRICS) - set(pairs) == {"hit_rate"}
