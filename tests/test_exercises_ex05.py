"""Checkers of ex05: a correct answer passes, wrong answers fail with a useful message."""

import math

import numpy as np
from exercise_harness import make_case_tests


def _ndcg(ranked, relevant, k, offset=1, normalise=True, cap=True, cut=True):
    top = ranked[:k] if cut else ranked
    with np.errstate(divide="ignore", invalid="ignore"):
        dcg = sum(1 / np.log2(r + offset) for r, item in enumerate(top, 1) if item in relevant)
        n_ideal = min(len(relevant), k) if cap else len(relevant)
        ideal = sum(1 / np.log2(r + offset) for r in range(1, n_ideal + 1))
        return float(dcg / ideal) if normalise else float(dcg)


def _pr(ranked, relevant, k, p_den=None, r_den=None, cut=True):
    hits = len(set(ranked[:k] if cut else ranked) & set(relevant))
    return hits / (p_den or k), hits / (r_den or len(relevant))


def _rank(scores, target, negatives, ties="index", full=False):
    cand = np.arange(len(scores)) if full else np.asarray(negatives)
    own, other = scores[target], scores[cand]
    above = (other > own) | ((other == own) & (cand < target) if ties == "index"
                             else (other == own) if ties == "pessimistic" else False)
    return int(np.sum(above)) + 1


def _hit_rate(scores, seen, held_out, k, exclude_seen=True, fill=-np.inf, after=False,
              share=True):
    scores = np.array(scores, dtype=float)
    if exclude_seen and not after:
        scores[seen] = fill
    hits = 0
    for u, row in enumerate(scores):
        top = np.argsort(-row)[:k]
        if exclude_seen and after:
            top = top[~seen[u, top]]
        hits += held_out[u] in top
    return hits / len(scores) if share else float(hits)


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_ndcg,
           [(lambda r, rel, k: _ndcg(r, rel, k, normalise=False), "ideal DCG"),
            (lambda r, rel, k: _ndcg(r, rel, k, offset=0), "log2(rank + 1)"),
            (lambda r, rel, k: _ndcg(r, rel, k, offset=2), "off by one rank"),
            (lambda r, rel, k: _ndcg(r, rel, k, cap=False), "min(|relevant|, k)"),
            (lambda r, rel, k: _ndcg(r, rel, k, cut=False), "only the first k"),
            (lambda r, rel, k: math.pi / 4, "expected"),
            (lambda r, rel, k: "0.5", "one number")]),
    "q2": (_pr,
           [(lambda r, rel, k: _pr(r, rel, k)[::-1], "swapped"),
            (lambda r, rel, k: _pr(r, rel, k, p_den=min(k, len(r))), "even when the list"),
            (lambda r, rel, k: _pr(r, rel, k, cut=False), "only the first k"),
            (lambda r, rel, k: _pr(r, rel, k, r_den=k), "number of relevant items"),
            (lambda r, rel, k: {"precision": 0.4}, "tuple (precision, recall)"),
            (lambda r, rel, k: ("0.4", 0.5), "precision (first element)")]),
    "q3": (_rank,
           [(lambda s, t, n: _rank(s, t, n) - 1, "ranks start at 1"),
            (lambda s, t, n: _rank(s, t, n, full=True), "not among the whole catalogue"),
            (lambda s, t, n: _rank(s, t, n, ties="optimistic"), "win every tie"),
            (lambda s, t, n: _rank(s, t, n, ties="pessimistic"), "lose every tie"),
            (lambda s, t, n: 2.5, "whole number")]),
    "q4": (_hit_rate,
           [(lambda s, seen, h, k, ex: _hit_rate(s, seen, h, k, ex, share=False), "share"),
            (lambda s, seen, h, k, ex: _hit_rate(s, seen, h, k, True), "keep the seen items"),
            (lambda s, seen, h, k, ex: _hit_rate(s, seen, h, k, False), "before taking the top k"),
            (lambda s, seen, h, k, ex: _hit_rate(s, seen, h, k, ex, fill=0.0), "-np.inf"),
            (lambda s, seen, h, k, ex: _hit_rate(s, seen, h, k, ex, after=True),
             "before taking the top k"),
            (lambda s, seen, h, k, ex: "all", "one number")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex05", CASES)
