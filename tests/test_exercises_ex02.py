"""Checkers of ex02: a correct answer passes, wrong answers fail with a useful message."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from exercise_harness import make_case_tests


# ------------------------------------------------------------------------------ q1: idf
def _df(documents, repeated=False):
    counts = {}
    for doc in documents:
        for term in (doc if repeated else set(doc)):
            counts[term] = counts.get(term, 0) + 1
    return counts


def _idf(documents):
    n = len(documents)
    return {t: np.log((1 + n) / (1 + c)) + 1 for t, c in _df(documents).items()}


def _idf_unsmoothed(documents):
    return {t: np.log(len(documents) / c) for t, c in _df(documents).items()}


def _idf_no_plus_one(documents):
    n = len(documents)
    return {t: np.log((1 + n) / (1 + c)) for t, c in _df(documents).items()}


def _idf_occurrences(documents):
    n = len(documents)
    return {t: np.log((1 + n) / (1 + c)) + 1 for t, c in _df(documents, True).items()}


def _idf_log10(documents):
    n = len(documents)
    return {t: np.log10((1 + n) / (1 + c)) + 1 for t, c in _df(documents).items()}


# --------------------------------------------------------------------------- q2: cosine
def _dense(x):
    return x.toarray().ravel() if sp.issparse(x) else np.asarray(x, dtype=float)


def _cosine(a, b):
    a, b = _dense(a), _dense(b)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else 0.0


def _cosine_dense_only(a, b):
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else 0.0


def _cosine_nan(a, b):
    a, b = _dense(a), _dense(b)
    with np.errstate(invalid="ignore"):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _cosine_sparse_matrix(a, b):
    if sp.issparse(a):
        norms = np.sqrt(a.multiply(a).sum()) * np.sqrt(b.multiply(b).sum())
        return (a @ b.T) / norms  # a 1 x 1 sparse matrix, not a number
    return _cosine(a, b)


# -------------------------------------------------------------------------- q3: profile
def _profile(profiles, ratings):
    weights = ratings["rating"].to_numpy() - ratings["rating"].mean()
    return pd.Series(weights @ profiles.loc[ratings["item_id"]].to_numpy(),
                     index=profiles.columns)


def _profile_raw_ratings(profiles, ratings):
    return pd.Series(ratings["rating"].to_numpy() @ profiles.loc[ratings["item_id"]].to_numpy(),
                     index=profiles.columns)


def _profile_unweighted(profiles, ratings):
    return profiles.loc[ratings["item_id"]].sum(axis=0)


def _profile_mean(profiles, ratings):
    return _profile(profiles, ratings) / len(ratings)


def _profile_positional(profiles, ratings):
    weights = ratings["rating"].to_numpy() - ratings["rating"].mean()
    return pd.Series(weights @ profiles.iloc[: len(ratings)].to_numpy(), index=profiles.columns)


# ------------------------------------------------------------------------------ q4: why
def _reason(profiles, ratings, item_id):
    liked = ratings.loc[ratings["rating"] > ratings["rating"].mean(), "item_id"]
    sims = profiles.loc[liked].to_numpy() @ profiles.loc[item_id].to_numpy()
    return int(liked.to_numpy()[np.argmax(sims)])


def _reason_any_rated(profiles, ratings, item_id):
    sims = profiles.loc[ratings["item_id"]].to_numpy() @ profiles.loc[item_id].to_numpy()
    return int(ratings["item_id"].to_numpy()[np.argmax(sims)])


def _reason_position(profiles, ratings, item_id):
    liked = ratings.loc[ratings["rating"] > ratings["rating"].mean(), "item_id"]
    sims = profiles.loc[liked].to_numpy() @ profiles.loc[item_id].to_numpy()
    return int(liked.index[np.argmax(sims)])


def _reason_whole_catalogue(profiles, ratings, item_id):
    return int(profiles.index[np.argmax(profiles.to_numpy() @ profiles.loc[item_id].to_numpy())])


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_idf,
           [(_idf_unsmoothed, "unsmoothed"), (_idf_no_plus_one, "forgot the + 1"),
            (_idf_occurrences, "counts once"), (_idf_log10, "natural logarithm"),
            (lambda docs: list(_idf(docs).values()), "dict"),
            (lambda docs: {t: v for t, v in _idf(docs).items() if t != "d"}, "one idf per"),
            (lambda docs: {t: 1.0 for t in _idf(docs)}, "wrong idf for")]),
    "q2": (_cosine,
           [(lambda a, b: float(_dense(a) @ _dense(b)), "dot product"),
            (_cosine_nan, "nan"),
            (_cosine_dense_only, "scipy.sparse"),
            (_cosine_sparse_matrix, "single number"),
            (lambda a, b: 0.5, "should be")]),
    "q3": (_profile,
           [(_profile_raw_ratings, "raw rating"), (_profile_unweighted, "without weights"),
            (_profile_mean, "divided by the number"), (_profile_positional, "item_id"),
            (lambda p, r: _profile(p, r).to_numpy(), "pandas Series"),
            (lambda p, r: _profile(p, r).iloc[:3], "one value per term"),
            (lambda p, r: -_profile(p, r), "differs from eq. (5)")]),
    "q4": (_reason,
           [(_reason_any_rated, "below their mean"), (_reason_position, "position"),
            (_reason_whole_catalogue, "recommended film itself"),
            (lambda p, r, i: int(r.loc[r["rating"].idxmax(), "item_id"]), "highest-rated"),
            (lambda p, r, i: str(_reason(p, r, i)), "integer"),
            (lambda p, r, i: 999, "not one of the films")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex02", CASES)
