"""The shared recommender interface and the classical models behind it."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_lib import benchmark
from recsys_lib.data import load_movielens
from recsys_lib.metrics import evaluate_ranking, relevant_items
from recsys_lib.models import (
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    RandomRecommender,
    UserKNNRecommender,
    top_k_indices,
)
from recsys_lib.models.content import ContentBasedRecommender, item_documents, tfidf_matrix
from recsys_lib.models.neighbours import (
    cosine_similarity,
    keep_top_neighbours,
    top_k_cosine_similarity,
)
from recsys_lib.splits import leave_last_out


@pytest.fixture(scope="module")
def bundled():
    ratings, items = load_movielens()
    split = leave_last_out(ratings)
    return split, items, relevant_items(split.val)


def planted():
    """Users 0-9 like items 0-9, users 10-19 like items 10-19; each rated 6 of their 10."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(20):
        group = range(0, 10) if u < 10 else range(10, 20)
        rows += [(u, i) for i in rng.choice(list(group), 6, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(rating=4.0, timestamp=0)


def test_top_k_indices_orders_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    np.testing.assert_array_equal(top_k_indices(scores, 3), [[1, 3, 2], [0, 1, 2]])
    assert top_k_indices(scores, 10).shape == (2, 4)
    rng = np.random.default_rng(0)  # many ties, also at the k-th place: same as a stable sort
    for _ in range(50):
        s = rng.integers(0, 4, (5, 12)).astype(float)
        s[rng.random((5, 12)) < 0.2] = -np.inf
        for k in (1, 3, 7, 12):
            np.testing.assert_array_equal(top_k_indices(s, k),
                                          np.argsort(-s, kind="stable", axis=1)[:, :k])


@pytest.mark.parametrize("model", [PopularityRecommender(), RandomRecommender(seed=3),
                                   ItemKNNRecommender(k=5), UserKNNRecommender(k=5),
                                   EASERecommender(l2=10.0)], ids=lambda m: m.name)
def test_interface_excludes_seen_items_and_checks_input(model):
    train = planted()
    model.fit(train)
    recs = model.recommend([0, 15], k=4)
    for user, items in recs.items():
        seen = set(train.loc[train.user_id == user, "item_id"])
        assert len(items) == 4 and not seen & set(items) and len(set(items)) == 4
    n_items = train["item_id"].nunique()
    with_seen = model.recommend([0], k=50, exclude_seen=False)[0]
    assert sorted(with_seen) == sorted(train["item_id"].unique())
    assert model.score([0, 1]).shape == (2, n_items)
    with pytest.raises(ValueError, match="unknown id"):
        model.recommend([999], k=3)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        model.recommend([0], k=0)


def test_recommend_returns_fewer_items_when_catalogue_is_exhausted():
    train = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10]})
    recs = PopularityRecommender().fit(train).recommend([1, 2], k=5)
    assert recs == {1: [], 2: [11]}


class _NaNScores(PopularityRecommender):
    """Popularity whose scores are NaN for the users listed in ``broken``."""

    name = "nan_scores"

    def __init__(self, broken, everywhere=False):
        self.broken, self.everywhere = set(broken), everywhere

    def _score(self, user_idx):
        scores = np.array(super()._score(user_idx), dtype=float)
        for row, user in enumerate(self.users_.inverse_transform(user_idx)):
            if user in self.broken:
                scores[row, :] = np.nan if self.everywhere else scores[row, :]
                scores[row, ::2] = np.nan
        return scores


@pytest.mark.parametrize("everywhere", [False, True])
def test_nan_scores_are_an_error_that_names_the_model(everywhere):
    """Partly NaN scores used to crash with a reshape error, all-NaN ones returned []."""
    train = planted()
    model = _NaNScores(broken=[15], everywhere=everywhere).fit(train)
    assert len(model.recommend([0], k=3)[0]) == 3  # healthy users are unaffected
    for k in (3, 40):
        with pytest.raises(ValueError, match=r"_NaNScores \(nan_scores\) gave NaN scores for 1 "
                                             r"user\(s\), e.g. \[15\]"):
            model.recommend([0, 15], k=k)


@pytest.mark.parametrize("make, message", [
    (lambda: ItemKNNRecommender(k=0), "k must be an integer >= 1"),
    (lambda: UserKNNRecommender(k=2.5), "k must be an integer >= 1"),
    (lambda: ItemKNNRecommender(shrinkage=-1), "shrinkage must be a finite number >= 0"),
    (lambda: RandomRecommender(seed=-1), "seed must be an integer >= 0"),
    (lambda: EASERecommender(l2=float("nan")), "l2 must be a finite number > 0"),
])
def test_bad_hyper_parameters_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unfitted_model_and_bad_training_table():
    with pytest.raises(RuntimeError, match="not fitted"):
        PopularityRecommender().recommend([1])
    with pytest.raises(ValueError, match="non-empty"):
        PopularityRecommender().fit(pd.DataFrame())
    with pytest.raises(ValueError, match="missing column"):
        PopularityRecommender().fit(pd.DataFrame({"user": [1], "item_id": [2]}))


@pytest.mark.parametrize("model", [ItemKNNRecommender(k=5), UserKNNRecommender(k=5),
                                   EASERecommender(l2=1.0)], ids=lambda m: m.name)
def test_personalised_models_find_the_planted_groups(model):
    train = planted()
    recs = model.fit(train).recommend(range(20), k=2)  # >= 2 unseen rated items per group
    right = [np.mean([(i < 10) == (u < 10) for i in items]) for u, items in recs.items()]
    assert np.mean(right) == 1.0


def test_popularity_and_random_are_not_personal():
    train = planted()
    pop = PopularityRecommender().fit(train)
    counts = train.groupby("item_id").size()
    np.testing.assert_array_equal(pop.score([0])[0], counts.to_numpy())
    rnd = RandomRecommender(seed=1).fit(train)
    np.testing.assert_array_equal(rnd.score([3]), RandomRecommender(seed=1).fit(train).score([3]))
    assert not np.array_equal(rnd.score([3]), RandomRecommender(seed=2).fit(train).score([3]))


def test_cosine_similarity_matches_dense_formula():
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 8)) < 0.3).astype(float)
    dense[:, 7] = 0  # an item nobody rated: similarity 0, not NaN
    sim = cosine_similarity(sp.csr_matrix(dense), shrinkage=2.0).toarray()
    norms = np.linalg.norm(dense, axis=0)
    expected = dense.T @ dense / (np.outer(norms, norms) + 2.0)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(sim, expected, atol=1e-12)
    top = keep_top_neighbours(sp.csr_matrix(sim), 2).toarray()
    assert ((top > 0).sum(axis=1) <= 2).all()
    for r in range(8):  # the kept entries are each row's two largest
        np.testing.assert_allclose(np.sort(top[r])[-2:], np.sort(sim[r])[-2:])
    blocked = top_k_cosine_similarity(sp.csr_matrix(dense), 2, 2.0, block_size=3).toarray()
    np.testing.assert_allclose(np.sort(blocked, axis=1), np.sort(top, axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="shrinkage"):
        cosine_similarity(sp.csr_matrix(dense), shrinkage=-1)


def test_ease_closed_form_solves_its_objective():
    rng = np.random.default_rng(1)
    x = (rng.random((40, 6)) < 0.4).astype(float)
    model = EASERecommender(l2=3.0).fit(pd.DataFrame(
        [(u, i) for u, i in zip(*np.nonzero(x), strict=True)], columns=["user_id", "item_id"]))
    b = model.weights_
    assert np.allclose(np.diag(b), 0.0)
    # KKT: the gradient of ||X - XB||^2 + l2||B||^2 is zero off the diagonal
    x_fit = model.matrix_.toarray()
    grad = -2 * x_fit.T @ (x_fit - x_fit @ b) + 2 * 3.0 * b
    off = ~np.eye(len(b), dtype=bool)
    np.testing.assert_allclose(grad[off], 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="l2 must be a finite number > 0"):
        EASERecommender(l2=0)


def test_tfidf_by_hand():
    matrix, vocab = tfidf_matrix([["a", "b"], ["a"], ["c", "c"]])
    idf = {t: np.log(4 / (1 + df)) + 1 for t, df in {"a": 2, "b": 1, "c": 1}.items()}
    row0 = np.array([idf["a"], idf["b"]]) / np.hypot(idf["a"], idf["b"])
    np.testing.assert_allclose(matrix.toarray()[0, [vocab.index("a"), vocab.index("b")]], row0)
    np.testing.assert_allclose(np.linalg.norm(matrix.toarray(), axis=1), 1.0)


def test_content_based_scores_unrated_items_and_explains(bundled):
    split, items, _ = bundled
    docs = item_documents(items.head(3))
    assert "genre:animation" in docs.iloc[0] and "toy" in docs.iloc[0]
    model = ContentBasedRecommender(items).fit(split.train)
    assert len(model.items_) == len(items)  # unrated catalogue items are scored too
    user = int(split.train["user_id"].iloc[0])
    rec = model.recommend([user], k=1)[user][0]
    because, similarity = model.explain(user, rec)
    assert because in set(split.train.loc[split.train.user_id == user, "item_id"])
    assert 0 < similarity <= 1 + 1e-9
    liked, _ = model.explain(user, rec, liked_only=True)
    mine = split.train[split.train.user_id == user]
    assert mine.set_index("item_id").loc[liked, "rating"] >= mine["rating"].mean()
    bad = split.train.head(1).assign(item_id=-5)
    with pytest.raises(ValueError, match="no row in the item table"):
        ContentBasedRecommender(items).fit(bad)


def test_classical_models_beat_popularity_on_real_data(bundled):
    split, _, relevant = bundled
    users = list(relevant)
    pop = evaluate_ranking(PopularityRecommender().fit(split.train).recommend(users), relevant)
    rnd = evaluate_ranking(RandomRecommender().fit(split.train).recommend(users), relevant)
    knn = evaluate_ranking(UserKNNRecommender().fit(split.train).recommend(users), relevant)
    assert pop["ndcg@10"] > 5 * rnd["ndcg@10"]
    assert knn["ndcg@10"] > pop["ndcg@10"]


def test_benchmark_writes_both_files(tmp_path, bundled):
    out = tmp_path / "run"
    assert benchmark.main(["--model", "popularity", "--dataset", "bundled", "--out", str(out),
                           "--quick"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"hit_rate@10", "ndcg@10", "mrr@10", "recall@10"}
    assert metrics["split"]["test"] == 671 and metrics["seed"] == 42
    recs = pd.read_csv(out / "recommendations.csv")
    assert list(recs.columns) == ["user_id", "rank", "item_id"]
    assert recs.groupby("user_id").size().eq(100).all() and recs["user_id"].nunique() == 671
    split, _, _ = bundled  # no recommended item was seen in train or validation
    seen = set(zip(split.train.user_id, split.train.item_id, strict=True)) | set(
        zip(split.val.user_id, split.val.item_id, strict=True))
    assert not seen & set(zip(recs.user_id, recs.item_id, strict=True))
    with pytest.raises(SystemExit):
        benchmark.main(["--model", "nope", "--dataset", "bundled", "--out", str(out)])


def test_benchmark_runs_several_seeds(tmp_path):
    assert benchmark.main(["--model", "random", "--dataset", "bundled", "--quick",
                           "--out", str(tmp_path), "--seeds", "1", "2"]) == 0
    seeds = [json.loads((tmp_path / f"seed-{s}" / "metrics.json").read_text())["seed"]
             for s in (1, 2)]
    assert seeds == [1, 2]


def test_benchmark_tie_control_is_applied_and_recorded(tmp_path):
    """--tie-seed orders equal timestamps at random; it is recorded in metrics.json."""
    ratings, items = load_movielens("bundled")
    few = ratings[ratings["user_id"] <= 100]
    runs = {}
    for tie_seed in (None, 0):
        out = tmp_path / str(tie_seed)
        runs[tie_seed] = benchmark.run("popularity", "bundled", out, quick=True, progress=False,
                                       data=(few, items), tie_seed=tie_seed)
        runs[tie_seed]["recs"] = pd.read_csv(out / "recommendations.csv")
    assert runs[None]["ties"] == "file order" and runs[0]["ties"] == "random (seed 0)"
    for part in ("train", "val", "test", "users"):  # same sizes, other tied items held out
        assert runs[0]["split"][part] == runs[None]["split"][part]
    # other films are held out, so the popularity counts and the lists change
    assert not runs[None]["recs"].equals(runs[0]["recs"])


def test_benchmark_runs_on_given_data(tmp_path):
    """``data=`` replaces the loader (the partial ml-1m run uses it); the label is kept."""
    ratings, items = load_movielens("bundled")
    few = ratings[ratings["user_id"] <= 50]
    result = benchmark.run("popularity", "bundled (50 users)", tmp_path, quick=True,
                           progress=False, data=(few, items))
    assert result["dataset"] == "bundled (50 users)"
    assert result["split"]["users"] == 50 and result["split"]["test"] == 50
    assert json.loads((tmp_path / "metrics.json").read_text())["split"]["users"] == 50


def test_partial_ml1m_loader_keeps_only_complete_users(shared_datasets):
    """results/ml-1m-partial/run.py drops user 2999, whose history the file cuts off."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "results" / "ml-1m-partial" / "run.py"
    spec = importlib.util.spec_from_file_location("partial_run", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ratings, items = module.load_partial(shared_datasets)
    assert ratings["user_id"].nunique() == 2998 and ratings["user_id"].max() == 2998
    assert len(ratings) == 487_650 - 135  # the file's lines minus user 2999's
    assert set(ratings["item_id"]) <= set(items["item_id"])
