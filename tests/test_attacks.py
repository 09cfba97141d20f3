"""Tests for ``recsys_lib.attacks``: the injectors (random noise, duplicates, shilling
profiles), exposure, the cleaning functions and the shilling detectors, on small synthetic
tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_lib.attacks import (
    ATTACK_KINDS,
    DETECTORS,
    LABEL,
    detection_auc,
    detection_report,
    drop_duplicate_interactions,
    drop_low_support,
    drop_users,
    exposure,
    fake_users,
    flag_suspicious,
    inject_duplicates,
    inject_random_interactions,
    shilling_attack,
    suspicion_score,
    suspicious_profiles,
    without_labels,
)
from recsys_lib.checks import ArgumentError

COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def synthetic(n_users: int = 200, n_items: int = 300, seed: int = 0) -> pd.DataFrame:
    """Users rate 20-59 items (popularity ~ Zipf) around each item's quality; half of them
    in one hour, half over 90 days, starting anywhere in three years."""
    rng = np.random.default_rng(seed)
    popularity = 1 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    quality, bias = rng.normal(3.5, 0.6, n_items), rng.normal(0, 0.4, n_users)
    parts = []
    for u in range(n_users):
        n = int(rng.integers(20, 60))
        items = rng.choice(n_items, size=n, replace=False, p=popularity)
        start = rng.integers(1_000_000_000, 1_100_000_000)
        times = start + np.sort(rng.integers(0, 3600 if u % 2 else 90 * 86_400, n))
        stars = np.round((quality[items] + bias[u] + rng.normal(0, 0.7, n)) * 2) / 2
        parts.append(pd.DataFrame({"user_id": u + 1, "item_id": items + 100,
                                   "rating": np.clip(stars, 0.5, 5.0), "timestamp": times}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def rare_target(ratings) -> int:
    counts = ratings["item_id"].value_counts()
    return int(counts[counts.between(3, 8)].index[0])


def pairs(table: pd.DataFrame) -> set:
    return set(zip(table["user_id"], table["item_id"], strict=True))


# ------------------------------------------------------------------ random interactions
@pytest.mark.parametrize("share", [0.0, 0.013, 0.1])
def test_random_injection_adds_the_share_and_keeps_the_originals(ratings, share):
    noisy = inject_random_interactions(ratings, share, seed=1)
    n_new = round(share * len(ratings))
    assert len(noisy) == len(ratings) + n_new
    assert noisy[LABEL].dtype == bool and noisy[LABEL].sum() == n_new
    pd.testing.assert_frame_equal(noisy.iloc[:len(ratings)][COLUMNS], ratings[COLUMNS])
    assert not noisy[LABEL].iloc[:len(ratings)].any()
    assert noisy[COLUMNS].dtypes.equals(ratings[COLUMNS].dtypes)


def test_random_injection_draws_new_pairs_inside_each_users_period(ratings):
    noisy = inject_random_interactions(ratings, 0.2, seed=3)
    new = noisy[noisy[LABEL]]
    assert not pairs(new) & pairs(ratings)  # no existing pair repeated
    assert len(pairs(new)) == len(new)  # nor a new one twice
    assert set(new["user_id"]) <= set(ratings["user_id"])
    assert set(new["item_id"]) <= set(ratings["item_id"])
    assert set(new["rating"]) <= set(ratings["rating"])
    span = ratings.groupby("user_id")["timestamp"].agg(["min", "max"]).loc[new["user_id"]]
    assert (new["timestamp"].to_numpy() >= span["min"].to_numpy()).all()
    assert (new["timestamp"].to_numpy() <= span["max"].to_numpy()).all()
    # interleaved, not piled at the ends of the periods
    inside = (new["timestamp"].to_numpy() > span["min"].to_numpy()) & (
        new["timestamp"].to_numpy() < span["max"].to_numpy())
    assert inside.mean() > 0.8


def test_random_injection_is_seeded_and_fills_a_dense_table_exactly():
    tiny = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10],
                         "rating": [4.0, 3.0, 5.0], "timestamp": [5, 9, 7]})
    a = inject_random_interactions(tiny, 1 / 3, seed=0)
    pd.testing.assert_frame_equal(a, inject_random_interactions(tiny, 1 / 3, seed=0))
    assert a.iloc[-1][["user_id", "item_id", "timestamp"]].tolist() == [2, 11, 7]
    with pytest.raises(ValueError, match="free"):
        inject_random_interactions(tiny, 2 / 3, seed=0)  # only one free pair


# ------------------------------------------------------------------ duplicates
def test_duplicates_are_exact_copies_a_little_later(ratings):
    doubled = inject_duplicates(ratings, 0.05, seed=2, max_delay=600)
    copies = doubled[doubled[LABEL]]
    assert len(copies) == round(0.05 * len(ratings))
    assert not copies.duplicated(["user_id", "item_id"]).any()  # drawn without replacement
    joined = copies.merge(ratings, on=["user_id", "item_id"], suffixes=("", "_orig"))
    assert len(joined) == len(copies)
    assert (joined["rating"] == joined["rating_orig"]).all()
    delay = joined["timestamp"] - joined["timestamp_orig"]
    assert delay.between(1, 600).all()
    pd.testing.assert_frame_equal(doubled.iloc[:len(ratings)][COLUMNS], ratings[COLUMNS])


def test_drop_duplicate_interactions_removes_exactly_the_injected_copies(ratings):
    doubled = inject_duplicates(ratings, 0.1, seed=4)
    clean, n_dropped = drop_duplicate_interactions(doubled)
    assert n_dropped == doubled[LABEL].sum()
    assert not clean[LABEL].any()
    pd.testing.assert_frame_equal(clean[COLUMNS], ratings[COLUMNS])


def test_drop_duplicate_interactions_keeps_the_earliest_row():
    table = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [5, 5, 6, 5],
                          "rating": [2.0, 4.0, 3.0, 1.0], "timestamp": [50, 10, 20, 10]})
    clean, n_dropped = drop_duplicate_interactions(table)
    assert n_dropped == 1
    assert clean["rating"].tolist() == [4.0, 3.0, 1.0]  # the later 2.0 went, order kept


# ------------------------------------------------------------------ shilling attack
@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_shilling_profiles_push_the_target_last(ratings, rare_target, kind):
    attacked = shilling_attack(ratings, rare_target, n_profiles=7, filler_size=15, kind=kind,
                               seed=5)
    fakes = fake_users(attacked)
    assert len(fakes) == 7 and fakes.min() > ratings["user_id"].max()
    assert fakes.tolist() == list(range(fakes.min(), fakes.min() + 7))
    new = attacked[attacked[LABEL]]
    assert set(new["user_id"]) == set(fakes) and len(new) == 7 * 16
    top = ratings["rating"].max()
    end = ratings["timestamp"].max()
    for _, profile in new.groupby("user_id"):
        is_target = (profile["item_id"] == rare_target).to_numpy()
        assert is_target.sum() == 1
        assert profile["item_id"].nunique() == 16  # 15 distinct fillers + the target
        assert profile.loc[is_target, "rating"].item() == top
        assert profile.loc[is_target, "timestamp"].item() > profile.loc[
            ~is_target, "timestamp"].max()
        assert profile["timestamp"].min() >= end - 86_400  # a recent burst
    assert set(new["rating"]) <= set(ratings["rating"])  # on the rating grid
    pd.testing.assert_frame_equal(attacked.iloc[:len(ratings)][COLUMNS], ratings[COLUMNS])


def test_bandwagon_fillers_are_the_most_rated_items(ratings, rare_target):
    attacked = shilling_attack(ratings, rare_target, 3, 10, kind="bandwagon", seed=0)
    counts = ratings["item_id"].value_counts()
    expected = set(counts.drop(rare_target).sort_values(ascending=False).index[:10])
    fillers = attacked[attacked[LABEL] & (attacked["item_id"] != rare_target)]
    for _, profile in fillers.groupby("user_id"):
        assert set(profile["item_id"]) == expected


def test_average_attack_rates_fillers_closer_to_their_item_means(ratings, rare_target):
    means = ratings.groupby("item_id")["rating"].mean()

    def distance(kind: str) -> float:
        attacked = shilling_attack(ratings, rare_target, 30, 20, kind=kind, seed=6)
        fillers = attacked[attacked[LABEL] & (attacked["item_id"] != rare_target)]
        return float((fillers["rating"] - means.loc[fillers["item_id"]].to_numpy()).abs()
                     .mean())

    assert distance("average") < 0.8 * distance("random")


def test_shilling_start_user_id_and_its_collisions(ratings, rare_target):
    attacked = shilling_attack(ratings, rare_target, 2, 3, seed=0, start_user_id=10_000)
    assert fake_users(attacked).tolist() == [10_000, 10_001]
    with pytest.raises(ValueError, match="collide"):
        shilling_attack(ratings, rare_target, 2, 3, seed=0, start_user_id=5)


def test_shilling_errors(ratings, rare_target):
    with pytest.raises(ValueError, match="unknown target item"):
        shilling_attack(ratings, -1, 2, 3)
    with pytest.raises(ArgumentError, match="n_profiles"):
        shilling_attack(ratings, rare_target, 0, 3)
    n_other = ratings["item_id"].nunique() - 1
    shilling_attack(ratings, rare_target, 1, n_other)  # every other item: allowed
    with pytest.raises(ValueError, match="filler_size"):
        shilling_attack(ratings, rare_target, 1, n_other + 1)
    with pytest.raises(ArgumentError, match="kind"):
        shilling_attack(ratings, rare_target, 1, 3, kind="segment")


@pytest.mark.parametrize("bad, message", [
    (pd.DataFrame(columns=COLUMNS), "empty"),
    (pd.DataFrame({"user_id": [1], "item_id": [2]}), "missing column"),
    (pd.DataFrame({"user_id": [1], "item_id": [2], "rating": [None], "timestamp": [3]}),
     "missing values"),
])
def test_bad_tables_are_rejected(bad, message):
    for call in (lambda: inject_random_interactions(bad, 0.1),
                 lambda: inject_duplicates(bad, 0.1),
                 lambda: drop_duplicate_interactions(bad)):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), True])
def test_bad_shares_are_rejected(ratings, share):
    with pytest.raises(ArgumentError, match="share"):
        inject_random_interactions(ratings, share)
    with pytest.raises(ArgumentError, match="share"):
        inject_duplicates(ratings, share)


def test_labels_chain_and_can_be_dropped(ratings, rare_target):
    attacked = shilling_attack(ratings, rare_target, 4, 5, seed=0)
    both = inject_duplicates(attacked, 0.02, seed=0)
    assert both[LABEL].sum() == attacked[LABEL].sum() + round(0.02 * len(attacked))
    assert fake_users(both).tolist() == fake_users(attacked).tolist()
    assert LABEL not in without_labels(both).columns
    assert list(without_labels(ratings).columns) == list(ratings.columns)
    with pytest.raises(ValueError, match="injected"):
        fake_users(ratings)


# ------------------------------------------------------------------ exposure, cleaning
def test_exposure_on_a_hand_example():
    recs = {1: [7, 8, 9], 2: [9, 7], 3: [1, 2, 3, 7], 4: []}
    assert exposure(recs, 7, k=1) == 0.25
    assert exposure(recs, 7, k=2) == 0.5
    assert exposure(recs, 7, k=4) == 0.75
    assert exposure(recs, 42, k=10) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        exposure({}, 7, k=10)
    with pytest.raises(ArgumentError, match="k"):
        exposure(recs, 7, k=0)


def test_drop_low_support_and_drop_users():
    table = pd.DataFrame({"user_id": [1, 2, 3, 1, 2, 1], "item_id": [5, 5, 5, 6, 6, 7],
                          "rating": 3.0, "timestamp": range(6)})
    clean, dropped = drop_low_support(table, min_item_count=2)
    assert dropped == 1 and clean["item_id"].tolist() == [5, 5, 5, 6, 6]
    assert drop_low_support(table, min_item_count=3)[1] == 3
    clean, dropped = drop_users(table, [1])
    assert dropped == 3 and set(clean["user_id"]) == {2, 3}


# ------------------------------------------------------------------ detectors
def test_detector_scores_on_a_hand_example():
    # item 10: ratings 5, 1 (mean 3, n 2); item 11: rating 4 (mean 4, n 1)
    table = pd.DataFrame({"user_id": [1, 2, 1], "item_id": [10, 10, 11],
                          "rating": [5.0, 1.0, 4.0], "timestamp": [0, 100, 10_000]})
    profiles = suspicious_profiles(table, n_neighbours=1, burst_window=3600,
                                   group_window=3600)
    assert profiles.index.tolist() == [1, 2]
    assert profiles["n_ratings"].tolist() == [2, 1]
    # user 1: (|5-3|/2 + 0/1) / 2 = 0.5; user 2: |1-3|/2 = 1
    np.testing.assert_allclose(profiles["rdma"], [0.5, 1.0])
    cosine = 5 * 1 / (np.sqrt(25 + 16) * 1)
    np.testing.assert_allclose(profiles["degsim"], [cosine, cosine])
    np.testing.assert_allclose(profiles["burst"], [0.5, 1.0])
    assert profiles["co_burst"].tolist() == [0, 0]  # same item, different ratings


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_detectors_rank_planted_fakes_above_genuine_users(ratings, rare_target, kind):
    attacked = shilling_attack(ratings, rare_target, n_profiles=10, filler_size=20,
                               kind=kind, seed=7)
    fakes = fake_users(attacked)
    profiles = suspicious_profiles(without_labels(attacked))
    assert set(profiles.columns) >= set(DETECTORS)
    assert detection_auc(suspicion_score(profiles), fakes) > 0.9
    flagged = flag_suspicious(without_labels(attacked), max_share=0.1)
    report = detection_report(flagged, fakes, n_users=len(profiles))
    assert report["recall"] >= 0.8
    assert report["false_positive_rate"] <= 0.1


def test_random_profiles_are_unlike_each_other_so_degsim_misses_them(ratings, rare_target):
    """The known weakness: DegSim needs fakes that resemble each other (bandwagon)."""
    random_attack = shilling_attack(ratings, rare_target, 10, 20, kind="random", seed=7)
    bandwagon = shilling_attack(ratings, rare_target, 10, 20, kind="bandwagon", seed=7)
    auc = {name: detection_auc(suspicious_profiles(table)["degsim"], fake_users(table))
           for name, table in (("random", random_attack), ("bandwagon", bandwagon))}
    assert auc["bandwagon"] > 0.9 > 0.5 > auc["random"]


def test_a_slow_spread_out_attack_escapes_the_co_burst_detector(ratings, rare_target):
    burst = shilling_attack(ratings, rare_target, 10, 20, seed=8)
    spread = shilling_attack(ratings, rare_target, 10, 20, seed=8,
                             burst_seconds=3 * 365 * 86_400)
    auc_burst = detection_auc(suspicious_profiles(burst)["co_burst"], fake_users(burst))
    auc_spread = detection_auc(suspicious_profiles(spread)["co_burst"], fake_users(spread))
    assert auc_burst > 0.95 and auc_spread < auc_burst - 0.2


def test_detection_report_and_auc_by_hand():
    report = detection_report([1, 2, 3, 4], [3, 4, 5], n_users=10)
    assert report == {"flagged": 4, "fakes": 3, "true_positives": 2, "false_positives": 2,
                      "precision": 0.5, "recall": 2 / 3, "false_positive_rate": 2 / 7}
    assert detection_report([], [1])["precision"] == 0.0
    with pytest.raises(ValueError, match="smaller"):
        detection_report([1, 2], [3], n_users=2)
    scores = pd.Series([0.9, 0.1, 0.5, 0.5], index=[1, 2, 3, 4])
    assert detection_auc(scores, [1]) == 1.0
    assert detection_auc(scores, [2]) == 0.0
    assert detection_auc(scores, [3]) == pytest.approx((1 + 0.5) / 3)
    with pytest.raises(ValueError, match="both"):
        detection_auc(scores, [7])


def test_flag_suspicious_arguments(ratings):
    assert len(flag_suspicious(ratings, max_share=0.05)) == int(0.05 * 200)
    assert len(flag_suspicious(ratings, max_share=0.05, threshold=1.0)) <= 10
    with pytest.raises(ArgumentError, match="max_share"):
        flag_suspicious(ratings, max_share=0.0)
    with pytest.raises(ArgumentError, match="detectors"):
        flag_suspicious(ratings, detectors=("rdma", "magic"))
    with pytest.raises(ValueError, match="at least one"):
        flag_suspicious(ratings, detectors=())
    with pytest.raises(ValueError, match="2 users"):
        suspicious_profiles(ratings[ratings["user_id"] == 1])
