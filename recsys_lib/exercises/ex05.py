"""Checks for the exercises of notebook 05 (evaluating recommenders honestly).

Used by ``exercises/05_evaluation.ipynb``: ``from recsys_lib.exercises.ex05 import *``.
Every expected value is computed here, from :mod:`recsys_lib.metrics` or from a reference
implementation, on small hand-made inputs.
"""

from __future__ import annotations

import math

import numpy as np

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.exercises.core import as_number as _number
from recsys_lib.metrics import ndcg_at_k, precision_at_k, rank_of_item, recall_at_k

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-9))


# ----------------------------------------------------------------------------------- q1
_RANKING_CASES = [  # (description, ranked list, relevant set, k)
    ("a list shorter than k, hit at rank 1", ["Up", "Big"], {"Up"}, 10),
    ("hits at ranks 2 and 5, one relevant film never recommended, k=5",
     ["Alien", "Heat", "Up", "Fargo", "Jaws", "Big"], {"Heat", "Jaws", "Rocky"}, 5),
    ("more relevant films than k", ["Alien", "Heat", "Up"], {"Alien", "Up", "Jaws", "Big"}, 2),
    ("no hit in the top k", ["Alien", "Heat", "Up"], {"Up"}, 2),
]


def _dcg(ranked, relevant, k, offset=1) -> float:
    """Binary DCG of the top k with discount 1 / log2(rank + offset), ranks from 1."""
    with np.errstate(divide="ignore"):
        return float(sum(1.0 / np.log2(r + offset)
                         for r, item in enumerate(list(ranked)[:k], start=1) if item in relevant))


def _ndcg_variant(ranked, relevant, k, cap_ideal=True, cut=True) -> float:
    ideal_n = min(len(relevant), k) if cap_ideal else len(relevant)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, ideal_n + 1))
    return _dcg(ranked, relevant, k if cut else len(ranked) + k) / ideal


def _check_ndcg(func) -> None:
    for name, ranked, relevant, k in _RANKING_CASES:
        got = _number(call_answer(func, list(ranked), set(relevant), k))
        want = ndcg_at_k(ranked, relevant, k)
        if not np.isfinite(got):
            raise Incorrect(f"Case '{name}': your function returned {got}. With 1-based ranks "
                            "the discount is 1 / log2(rank + 1), so rank 1 gets 1 / log2(2) = 1 "
                            "(log2(1) = 0 would divide by zero)")
        if _close(got, want):
            continue
        if _close(got, _dcg(ranked, relevant, k)):
            raise Incorrect(f"Case '{name}': you returned the DCG {got:.4f}; divide it by the "
                            "ideal DCG (all relevant items at the top) to get NDCG")
        if _close(got, _dcg(ranked, relevant, k, offset=2)) or _close(
                got, _ndcg_offset(ranked, relevant, k)):
            raise Incorrect(f"Case '{name}': your discount is off by one rank. With 1-based "
                            "ranks use 1 / log2(rank + 1); with 0-based positions i, "
                            "1 / log2(i + 2)")
        if _close(got, _ndcg_variant(ranked, relevant, k, cap_ideal=False)):
            raise Incorrect(f"Case '{name}': the ideal top-{k} list can hold at most "
                            f"min(|relevant|, k) = {min(len(relevant), k)} relevant items; "
                            "you summed the ideal DCG over all relevant items")
        if _close(got, _ndcg_variant(ranked, relevant, k, cut=False)):
            raise Incorrect(f"Case '{name}': only the first k items of the list count; you "
                            "also counted hits after position k")
        raise Incorrect(f"Case '{name}': expected {want:.4f}, got {got:.4f}")


def _ndcg_offset(ranked, relevant, k) -> float:
    ideal = sum(1.0 / math.log2(r + 2) for r in range(1, min(len(relevant), k) + 1))
    return _dcg(ranked, relevant, k, offset=2) / ideal


# ----------------------------------------------------------------------------------- q2
def _pair(result) -> tuple[float, float]:
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise Incorrect(f"Return a tuple (precision, recall), got {type(result).__name__}"
                        + (f" of length {len(result)}" if isinstance(result, tuple | list)
                           else ""))
    return (_number(result[0], "The precision (first element)"),
            _number(result[1], "The recall (second element)"))


def _check_precision_recall(func) -> None:
    for name, ranked, relevant, k in _RANKING_CASES:
        precision, recall = _pair(call_answer(func, list(ranked), set(relevant), k))
        want_p, want_r = precision_at_k(ranked, relevant, k), recall_at_k(ranked, relevant, k)
        if _close(precision, want_p) and _close(recall, want_r):
            continue
        hits = len(set(ranked[:k]) & relevant)
        all_hits = len(set(ranked) & relevant)
        if _close(precision, want_r) and _close(recall, want_p) and not _close(want_p, want_r):
            raise Incorrect(f"Case '{name}': precision and recall are swapped; return "
                            "(precision, recall)")
        if not _close(precision, want_p):
            if _close(precision, hits / min(k, len(ranked))) and len(ranked) < k:
                raise Incorrect(f"Case '{name}': the list has {len(ranked)} items but k={k}: "
                                "precision@k divides by k even when the list is shorter (the "
                                "empty slots count as misses)")
            if _close(precision, all_hits / k):
                raise Incorrect(f"Case '{name}': only the first k items count; you also "
                                "counted hits after position k")
            raise Incorrect(f"Case '{name}': precision@{k} should be {want_p:.4f} (hits in "
                            f"the top k / k), got {precision:.4f}")
        if _close(recall, hits / k) or _close(recall, hits / min(k, len(relevant))):
            raise Incorrect(f"Case '{name}': recall divides the hits by the number of "
                            f"relevant items ({len(relevant)}), not by k")
        if _close(recall, all_hits / len(relevant)):
            raise Incorrect(f"Case '{name}': only the first k items count; you also counted "
                            "hits after position k")
        raise Incorrect(f"Case '{name}': recall@{k} should be {want_r:.4f}, got {recall:.4f}")


# ----------------------------------------------------------------------------------- q3
_Q3_SCORES = np.array([0.9, 0.2, 0.5, 0.7, 0.5, 0.5, 0.1, 0.8, 0.5, 0.3, 0.95, 0.4])
_Q3_CASES = [  # (description, target, negatives)
    ("three of five negatives score higher", 2, [0, 3, 6, 7, 9]),
    ("ties: items 2, 4 and 8 score the same as item 5", 5, [2, 4, 8, 0, 1]),
    ("the target beats every negative", 10, [1, 3, 6]),
    ("the target loses to every negative", 6, [9, 1, 11, 2]),
]


def _rank_variant(scores, target, negatives, ties="index", full=False) -> int:
    cand = np.arange(len(scores)) if full else np.asarray(negatives)
    cand = cand[cand != target]
    own, other = scores[target], scores[cand]
    above = other > own
    if ties == "index":
        above |= (other == own) & (cand < target)
    elif ties == "pessimistic":
        above |= other == own
    return int(above.sum()) + 1


def _check_sampled_rank(func) -> None:
    for name, target, negatives in _Q3_CASES:
        result = call_answer(func, _Q3_SCORES.copy(), target, np.array(negatives))
        got = _number(result, "Your function")
        if got != int(got):
            raise Incorrect(f"Case '{name}': a rank is a whole number, got {got}")
        want = rank_of_item(_Q3_SCORES, target, negatives)
        if got == want:
            continue
        if got == want - 1:
            raise Incorrect(f"Case '{name}': ranks start at 1 (the best item has rank 1); "
                            f"you returned {int(got)}, expected {want}")
        if got == _rank_variant(_Q3_SCORES, target, negatives, full=True):
            raise Incorrect(f"Case '{name}': rank the target among the sampled negatives "
                            "only, not among the whole catalogue")
        if got == _rank_variant(_Q3_SCORES, target, negatives, ties="optimistic"):
            raise Incorrect(f"Case '{name}': you let the target win every tie (only strictly "
                            "higher scores counted). A negative with the same score ranks "
                            "above the target when its index is lower")
        if got == _rank_variant(_Q3_SCORES, target, negatives, ties="pessimistic"):
            raise Incorrect(f"Case '{name}': you let the target lose every tie. A negative "
                            "with the same score ranks above the target only when its index "
                            "is lower")
        raise Incorrect(f"Case '{name}': expected rank {want}, got {int(got)}")


# ----------------------------------------------------------------------------------- q4
# 4 users x 6 items. Seen items have the highest scores (a model's scores for what a user
# already watched are usually high), and some unseen ones are negative.
_Q4_SCORES = np.array([
    [3.0, 2.5, -0.5, 1.0, -1.0, 0.2],
    [-0.3, 2.0, 1.5, -0.8, 0.1, -2.0],
    [1.2, -0.1, 0.3, 2.2, -0.4, 0.9],
    [-0.6, -0.2, 2.4, -1.1, 1.9, -0.9],
])
_Q4_SEEN = np.array([
    [1, 1, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0],
    [1, 0, 0, 1, 0, 1],
    [0, 0, 1, 0, 1, 0],
], dtype=bool)
_Q4_HELD_OUT = np.array([3, 4, 2, 0])


def _hit_rate_variant(scores, seen, held_out, k, exclude_seen=True, fill=-np.inf,
                      after=False) -> float:
    scores = np.array(scores, dtype=float)
    if exclude_seen and not after:
        scores[seen] = fill
    hits = []
    for u in range(len(scores)):
        top = np.argsort(-scores[u], kind="stable")[:k]
        if exclude_seen and after:
            top = top[~seen[u, top]]
        hits.append(held_out[u] in top)
    return float(np.mean(hits))


def _check_hit_rate(func) -> None:
    args = (_Q4_SCORES, _Q4_SEEN, _Q4_HELD_OUT)
    for k in (1, 2):
        for exclude in (True, False):
            got = _number(call_answer(func, *(a.copy() for a in args), k, exclude))
            want = _hit_rate_variant(*args, k, exclude)
            if _close(got, want):
                continue
            case = f"k={k}, exclude_seen={exclude}"
            if _close(got, want * len(_Q4_HELD_OUT)) and want > 0:
                raise Incorrect(f"{case}: return the share of users with a hit (a number "
                                "between 0 and 1), not the number of hits")
            if exclude and _close(got, _hit_rate_variant(*args, k, fill=0.0)):
                raise Incorrect(f"{case}: you set the seen items' scores to 0, but unseen "
                                "items can score below 0 and then lose to a seen item; use "
                                "-np.inf")
            if _close(got, _hit_rate_variant(*args, k, not exclude)):
                if exclude:
                    raise Incorrect(f"{case}: your hit rate equals the one with the seen items "
                                    "kept. Either you ignored exclude_seen, or you removed the "
                                    "seen items after taking the top k (which leaves fewer "
                                    "than k recommendations); set their scores to -np.inf "
                                    "before taking the top k")
                raise Incorrect(f"{case}: with exclude_seen=False keep the seen items in the "
                                "ranking; your answer removes them anyway")
            raise Incorrect(f"{case}: expected HR@{k} = {want:.4f}, got {got:.4f}")


EXERCISES = ExerciseSet("ex05", [
    Question("q1", "NDCG@k of one ranked list", _check_ndcg,
             "DCG: sum 1 / np.log2(rank + 1) over the relevant items among the first k "
             "(rank starts at 1). Ideal DCG: the same sum for ranks 1..min(len(relevant), k)."),
    Question("q2", "precision@k and recall@k", _check_precision_recall,
             "hits = number of items in ranked[:k] that are in relevant; precision = hits / k, "
             "recall = hits / len(relevant)."),
    Question("q3", "rank of a held-out item among sampled negatives", _check_sampled_rank,
             "Count the negatives that beat the target: a higher score, or the same score and "
             "a lower index. The rank is that count + 1."),
    Question("q4", "hit rate with and without the seen items", _check_hit_rate,
             "Copy the scores; if exclude_seen, set scores[seen] = -np.inf. Then for each user "
             "check whether held_out[u] is in np.argsort(-row)[:k]; return the mean."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
