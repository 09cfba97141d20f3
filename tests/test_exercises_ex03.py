"""Checkers of ex03: a correct answer passes, wrong answers fail with a useful message."""

import numpy as np
from exercise_harness import make_case_tests
from scipy import stats


def _cosine(a, b):
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else 0.0


def _cosine_no_guard(a, b):
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _cosine_shared_norms(a, b):
    both = ~np.isnan(a) & ~np.isnan(b)
    norms = np.linalg.norm(a[both]) * np.linalg.norm(b[both])
    return float(a[both] @ b[both] / norms) if norms > 0 else 0.0


def _pearson(a, b):
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 2 or np.ptp(a[both]) == 0 or np.ptp(b[both]) == 0:
        return 0.0
    return float(stats.pearsonr(a[both], b[both]).statistic)


def _pearson_overall_means(a, b):
    both = ~np.isnan(a) & ~np.isnan(b)
    da, db = a[both] - np.nanmean(a), b[both] - np.nanmean(b)
    norms = np.sqrt((da**2).sum() * (db**2).sum())
    return float(da @ db / norms) if norms > 0 else 0.0


def _pearson_no_guard(a, b):
    both = ~np.isnan(a) & ~np.isnan(b)
    da, db = a[both] - a[both].mean(), b[both] - b[both].mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(da @ db / np.sqrt((da**2).sum() * (db**2).sum()))


def _predict(R, sim, u, i, k, centre=True, add_mean=True, prefilter=True, positive=True,
             limit=True):
    means = np.nanmean(R, axis=1)
    users = np.array([v for v in range(len(R)) if v != u])
    if not prefilter:
        users = users[np.argsort(-sim[u, users], kind="stable")[:k]]
    rated = ~np.isnan(R[users, i]) & ((sim[u, users] > 0) | (not positive))
    cands = users[rated]
    cands = cands[np.argsort(-sim[u, cands], kind="stable")]
    if limit:
        cands = cands[:k]
    if len(cands) == 0:
        return float(means[u])
    w = sim[u, cands]
    dev = R[cands, i] - (means[cands] if centre else 0.0)
    return float((means[u] if add_mean else 0.0) + w @ dev / np.abs(w).sum())


def _predict_nan_fallback(R, sim, u, i, k):
    means = np.nanmean(R, axis=1)
    raters = np.flatnonzero(~np.isnan(R[:, i]) & (sim[u] > 0))
    nearest = raters[np.argsort(-sim[u, raters])[:k]]
    w = sim[u, nearest]
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(means[u] + w @ (R[nearest, i] - means[nearest]) / np.abs(w).sum())


def _top(sim, i, k):
    row = np.array(sim[i], dtype=float)
    row[i] = -np.inf
    return np.argsort(-row, kind="stable")[:k]


def _top_ties_reversed(sim, i, k):  # right items, ties in the wrong order
    row = np.array(sim[i], dtype=float)
    row[i] = -np.inf
    return np.argsort(row)[::-1][:k]


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_cosine,
           [(lambda a, b: float(np.nan_to_num(a) @ np.nan_to_num(b)), "dot product"),
            (_cosine_shared_norms, "only the shared films"),
            (_cosine_no_guard, "norm 0"),
            (lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))), "np.nan_to_num"),
            (lambda a, b: "0.5", "one number")]),
    "q2": (_pearson,
           [(_pearson_overall_means, "co-rated films only"),
            (lambda a, b: float(np.corrcoef(np.nan_to_num(a), np.nan_to_num(b))[0, 1]),
             "filling the missing ratings with 0"),
            (_pearson_no_guard, "fewer than 2"),
            (lambda a, b: -_pearson(a, b) if _pearson(a, b) else 0.0, "expected")]),
    "q3": (_predict,
           [(lambda *args: _predict(*args, centre=False, add_mean=False), "raw ratings"),
            (lambda *args: _predict(*args, add_mean=False), "add user u's own mean"),
            (lambda *args: _predict(*args, prefilter=False), "among the users who rated"),
            (lambda *args: _predict(*args, positive=False), "positive similarity"),
            (lambda *args: _predict(*args, limit=False), "only the k most similar"),
            (_predict_nan_fallback, "return the user's mean"),
            (lambda R, sim, u, i, k: [1.0], "one number")]),
    "q4": (_top,
           [(lambda sim, i, k: np.argsort(-sim[i], kind="stable")[:k], "itself out"),
            (lambda sim, i, k: _top(sim, i, k)[::-1], "most similar item first"),
            (_top_ties_reversed, "smaller index first"),
            (lambda sim, i, k: _top(sim, i, k + 1), "exactly k"),
            (lambda sim, i, k: np.sort(sim[i])[::-1][1:k + 1], "not similarities"),
            (lambda sim, i, k: _top(sim, i, k)[:, None], "1-D")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex03", CASES)
