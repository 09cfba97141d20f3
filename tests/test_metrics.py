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
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        fn(REC, REL, 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        fn(REC, REL, 2.5)
    with pytest.raises(ValueError, match=r"repeats item\(s\) \['a'\]"):
        fn(["a", "b", "a"], REL, 3)
    with pytest.raises(ValueError, match="no relevant items"):
        fn(REC, set(), 3)


PER_USER_FUNCTIONS = [precision_at_k, recall_at_k, hit_rate_at_k, mrr_at_k,
                      average_precision_at_k, ndcg_at_k]


@pytest.mark.parametrize("fn", PER_USER_FUNCTIONS)
@pytest.mark.parametrize(("recommended", "relevant", "bad"), [
    (["ab", "a", "b"], "ab", "relevant"),  # was 2/3: "ab" read as the items "a" and "b"
    (["ab", "a", "b"], b"ab", "relevant"),
    ("ab", {"ab"}, "recommended"),
    (["a"], 7, "relevant"),
    ((item for item in ["a"]), {"a"}, "recommended"),
])
def test_strings_and_non_collections_are_refused(fn, recommended, relevant, bad):
    with pytest.raises(TypeError, match=f"{bad} must be a collection of item ids"):
        fn(recommended, relevant, 3)


def test_item_collections_of_every_kind_are_accepted():
    import pandas as pd

    for relevant in ({"b"}, ["b"], ("b",), np.array(["b"]), pd.Series(["b"]), {"b": 1}.keys()):
        assert precision_at_k(np.array(["a", "b"]), relevant, 2) == 0.5
    assert precision_at_k(("ab", "a", "b"), {"ab"}, 3) == pytest.approx(1 / 3)


def test_evaluate_ranking_refuses_strings_as_item_collections():
    with pytest.raises(TypeError, match=r"relevant\[1\] must be a collection"):
        evaluate_ranking({1: ["ab"]}, {1: "ab"}, k=1)
    with pytest.raises(TypeError, match="recommended must be a collection"):
        evaluate_ranking({1: "ab"}, {1: {"ab"}}, k=1)


def test_beyond_accuracy_metrics_refuse_strings_as_lists():
    from recsys_lib.metrics import catalogue_coverage, novelty

    with pytest.raises(TypeError, match=r"recommendations\[1\] must be a collection"):
        catalogue_coverage({1: "abc"}, 10)
    with pytest.raises(TypeError, match=r"recommendations\[1\] must be a collection"):
        novelty({1: "abc"}, {"a": 1}, 2)


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
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
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


@pytest.mark.parametrize("fn", [rmse, mae])
def test_rating_metrics_refuse_missing_and_infinite_values(fn):
    with pytest.raises(ValueError, match=r"y_true has 1 missing \(NaN\) value.*position 1"):
        fn([1, float("nan")], [1, 2])  # was nan
    with pytest.raises(ValueError, match=r"y_pred has 2 missing \(NaN\) value"):
        fn([1, 2], [float("nan")] * 2)
    with pytest.raises(ValueError, match="y_true has 1 infinite value"):
        fn([1, float("inf")], [1, 2])
    with pytest.raises(TypeError, match="y_pred must hold numbers"):
        fn([1, 2], ["a", "b"])


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


# ----------------------------------------------------------- coverage, novelty, sampled ranking
def test_catalogue_coverage_counts_distinct_items():
    from recsys_lib.metrics import catalogue_coverage

    recs = {1: ["a", "b", "c"], 2: ["a", "d"], 3: []}
    assert catalogue_coverage(recs, 10) == pytest.approx(4 / 10)
    assert catalogue_coverage(recs, 10, k=1) == pytest.approx(1 / 10)  # only "a"
    with pytest.raises(ValueError, match="n_items must be an integer >= 1"):
        catalogue_coverage(recs, 0)
    with pytest.raises(ValueError, match="4 distinct items were recommended but n_items is 3"):
        catalogue_coverage(recs, 3)


def test_novelty_is_mean_self_information_per_user():
    from recsys_lib.metrics import novelty

    popularity = {"a": 8, "b": 2, "c": 1}  # users who saw each item, out of 8
    recs = {1: ["a", "b"], 2: ["c"], 3: []}  # user 3 has no list: left out
    want = np.mean([np.mean([-math.log2(8 / 8), -math.log2(2 / 8)]), -math.log2(1 / 8)])
    assert novelty(recs, popularity, 8) == pytest.approx(want)  # (1 + 3) / 2 = 2 bits
    assert novelty(recs, popularity, 8, k=1) == pytest.approx((0 + 3) / 2)
    # an item nobody saw counts as seen by one user: log2(n_users) bits, not infinity
    assert novelty({1: ["new"]}, popularity, 8) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="count users"):
        novelty(recs, {"a": 9}, 8)
    with pytest.raises(ValueError, match="every recommendation list is empty"):
        novelty({1: []}, popularity, 8)
    with pytest.raises(ValueError, match="n_users must be an integer >= 1"):
        novelty(recs, popularity, 0)


def test_rank_of_item_breaks_ties_by_column_index():
    from recsys_lib.metrics import rank_of_item

    scores = np.array([0.9, 0.5, 0.5, 0.1, 0.5])
    assert rank_of_item(scores, 0) == 1
    assert rank_of_item(scores, 1) == 2  # tied with 2 and 4, lowest index
    assert rank_of_item(scores, 4) == 4  # behind 0, 1 and 2
    assert rank_of_item(scores, 4, candidates=[3, 4]) == 1  # only item 3 competes
    assert rank_of_item(scores, 3, candidates=[]) == 1
    with pytest.raises(ValueError, match="outside"):
        rank_of_item(scores, 5)
    with pytest.raises(ValueError, match="NaN"):
        rank_of_item(np.array([np.nan, 1.0]), 1)
    with pytest.raises(ValueError, match="1-D"):
        rank_of_item(scores[None, :], 0)


def _fixed_score_model(score_rows: dict, train, items=None):
    """A Recommender whose scores are given by hand (rows in encoded user order)."""
    from recsys_lib.models import Recommender

    class Fixed(Recommender):
        def _fit(self, matrix):
            self.table_ = np.array([score_rows[u] for u in self.users_.ids_], dtype=float)

        def _score(self, user_idx):
            return self.table_[user_idx]

    return Fixed().fit(train, items=items)


def test_sampled_ranking_on_a_hand_made_case():
    import pandas as pd

    from recsys_lib.metrics import sampled_ranking_metrics

    # items 10..15 (columns 0..5). User 1 saw 10 and 11, which score highest: if a seen
    # item were ever drawn as a negative, the held-out item could not be first.
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 2], "item_id": [10, 11, 10, 12, 15]})
    model = _fixed_score_model({1: [9, 9, 0.3, 0.5, 0.1, 0.2], 2: [0, 0.1, 0, 0.2, 0.3, 0]},
                               train, items=range(10, 16))
    test = pd.DataFrame({"user_id": [1, 2], "item_id": [13, 11]})
    # full ranking: user 1's item 13 (0.5) beats the unseen 12, 14, 15 -> rank 1;
    # user 2's item 11 (0.1) is behind 14 (0.3) and 13 (0.2) -> rank 3
    full, ranks = sampled_ranking_metrics(model, test, k=2, n_negatives=None,
                                          return_ranks=True)
    np.testing.assert_array_equal(ranks, [1, 3])
    assert full["hit_rate@2"] == pytest.approx(0.5)
    assert full["ndcg@2"] == pytest.approx(0.5)  # (1 / log2(2) + 0) / 2
    assert full["mrr@2"] == pytest.approx(0.5)
    assert full["pairs"] == 2 and full["unknown_items"] == 0
    for seed in range(20):  # one negative: user 1 always rank 1; user 2 rank 2 (13 or 14)
        _, ranks = sampled_ranking_metrics(model, test, k=2, n_negatives=1, seed=seed,
                                           return_ranks=True)
        assert ranks[0] == 1 and ranks[1] == 2
    # with as many negatives as candidates, sampling changes nothing
    same = sampled_ranking_metrics(model, test, k=2, n_negatives=50)
    assert same == full
    # an item the model never saw is a miss
    cold = sampled_ranking_metrics(model, pd.DataFrame({"user_id": [1], "item_id": [99]}))
    assert cold["hit_rate@10"] == 0.0 and cold["unknown_items"] == 1


def test_sampled_metrics_are_at_least_the_full_ranking_ones():
    import pandas as pd

    from recsys_lib.metrics import sampled_ranking_metrics
    from recsys_lib.models import ItemKNNRecommender, PopularityRecommender

    rng = np.random.default_rng(1)
    n_users, n_items = 60, 200
    rows = [(u, int(i)) for u in range(n_users)
            for i in rng.choice(n_items, size=25, replace=False, p=np.linspace(2, 1, n_items)
                                / np.linspace(2, 1, n_items).sum())]
    data = pd.DataFrame(rows, columns=["user_id", "item_id"])
    test = data.groupby("user_id").tail(1)
    train = data.drop(index=test.index)
    test = test[test["item_id"].isin(train["item_id"])]
    relevant = relevant_items(test)
    for model in (PopularityRecommender().fit(train), ItemKNNRecommender(k=20).fit(train)):
        full, full_ranks = sampled_ranking_metrics(model, test, k=10, n_negatives=None,
                                                   return_ranks=True)
        recs = model.recommend(list(relevant), k=50)
        honest = evaluate_ranking({u: r[:10] for u, r in recs.items()}, relevant, k=10,
                                  metrics=("hit_rate", "ndcg", "mrr"))
        for name in ("hit_rate@10", "ndcg@10", "mrr@10"):
            assert full[name] == pytest.approx(honest[name])  # the same protocol, twice
        scores = model.score(test["user_id"].unique())
        sampled, ranks = sampled_ranking_metrics(model, test, k=10, n_negatives=20, seed=3,
                                                 scores=scores, return_ranks=True)
        assert (ranks <= full_ranks).all()
        for name in ("hit_rate@10", "ndcg@10", "mrr@10"):
            assert sampled[name] >= full[name]
        assert sampled["hit_rate@10"] > full["hit_rate@10"]
        again = sampled_ranking_metrics(model, test, k=10, n_negatives=20, seed=3)
        assert again == sampled  # seeded: the same negatives


def test_sampled_ranking_refuses_bad_input():
    import pandas as pd

    from recsys_lib.metrics import sampled_ranking_metrics

    train = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 12]})
    model = _fixed_score_model({1: [1, 2, 3], 2: [3, 2, 1]}, train)
    test = pd.DataFrame({"user_id": [1], "item_id": [12]})
    with pytest.raises(ValueError, match="n_negatives must be an integer >= 1, got 0; or pass "
                                         "None"):
        sampled_ranking_metrics(model, test, n_negatives=0)
    with pytest.raises(ValueError, match="unknown metric"):
        sampled_ranking_metrics(model, test, metrics=("auc",))
    with pytest.raises(ValueError, match="shape"):
        sampled_ranking_metrics(model, test, scores=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="missing column"):
        sampled_ranking_metrics(model, test.rename(columns={"item_id": "item"}))
    with pytest.raises(ValueError, match="can only recommend for users in its training"):
        sampled_ranking_metrics(model, pd.DataFrame({"user_id": [7], "item_id": [12]}))
