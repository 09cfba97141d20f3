"""Checkers of ex01: a correct answer passes, wrong answers fail with a useful message."""

import pandas as pd
from exercise_harness import make_case_tests

from recsys_lib.preprocessing import k_core
from recsys_lib.splits import leave_last_out


def _one_pass_k_core(r, k):
    users = r.groupby("user_id")["user_id"].transform("size")
    items = r.groupby("item_id")["item_id"].transform("size")
    return r[(users >= k) & (items >= k)]


def _split_unstable(r):
    ordered = r.sort_values(["user_id", "timestamp"], ascending=[True, False])
    test = ordered[~ordered.duplicated("user_id", keep="first")]
    test = test[test["user_id"].map(r.groupby("user_id").size()) >= 2]
    return r.drop(index=test.index), test


def _is_leaky(train, test):
    both = pd.concat([train.groupby("user_id")["timestamp"].max(),
                      test.groupby("user_id")["timestamp"].min()], axis=1, keys=["a", "b"])
    return bool((both.dropna()["a"] > both.dropna()["b"]).any())


def _leaky_global(train, test):
    return bool(train["timestamp"].max() > test["timestamp"].min())


def _mean_center(r):
    return r["rating"] - r.groupby("user_id")["rating"].transform("mean")


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_mean_center,
           [(lambda r: r["rating"] - r["rating"].mean(), "global mean"),
            (lambda r: _mean_center(r).reset_index(drop=True), "index"),
            (lambda r: r["rating"].to_numpy(), "Series")]),
    "q2": (lambda r, k: k_core(r, k, k),
           [(_one_pass_k_core, "repeat"), (lambda r, k: r, "expected the rows")]),
    "q3": (lambda r: (lambda s: (s.train, s.test))(leave_last_out(r, False)),
           [(_split_unstable, "stable sort"),
            (lambda r: (r, r), "both train and test"),
            (lambda r: leave_last_out(r, False).train, "tuple")]),
    "q4": (_is_leaky, [(_leaky_global, "another user"), (lambda tr, te: "no", "True or False")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex01", CASES)
