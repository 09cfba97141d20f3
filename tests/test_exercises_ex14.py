"""Checkers of ex14: a correct answer passes, wrong answers fail with a useful message.

Also: the references agree with the course library where it has the same computation
(``ResidualKMeans.encode``, ``attacks.exposure``, EASE's closed form), the checkers' cases
tell the usual mistakes apart (no ties, noise spreads that differ), answers written
differently from the worked ones pass, the stored notebooks are up to date, and (in the slow
tier, it runs a kernel) a graded notebook is checked through the grader, with generators, a
score function and DataFrames sent to the kernel.
"""

from __future__ import annotations

import math

import nbformat
import numpy as np
import pandas as pd
import pytest
from exercise_harness import make_case_tests

from recsys_lib.config import REPO_ROOT
from recsys_lib.exercises import CORRECT, INCORRECT, NOT_ANSWERED, ex14
from recsys_lib.exercises.build import drifted
from recsys_lib.exercises.core import source_file


# ------------------------------------------------------------------------------------ q1
def _rq(vectors, codebooks, *, how="residual", recon="sum", in_place=False,
        float_codes=False, transpose=False):
    """The worked answer of q1, and its usual mistakes."""
    x = vectors if in_place else vectors.copy()
    residual = x
    codes = np.zeros((len(x), len(codebooks)), dtype=float if float_codes else int)
    chosen = []
    for level, cb in enumerate(codebooks):
        source = vectors if how == "original" else residual
        if how == "inner":
            code = (source @ cb.T).argmax(axis=1)
        elif how == "farthest":
            code = ((source[:, None] - cb[None]) ** 2).sum(2).argmax(axis=1)
        else:
            code = ((source[:, None] - cb[None]) ** 2).sum(2).argmin(axis=1)
        codes[:, level] = code
        chosen.append(cb[code])
        if how == "previous_only":
            residual = vectors - cb[code]
        elif in_place:
            residual -= cb[code]
        else:
            residual = residual - cb[code]
    total = np.sum(chosen, axis=0)
    reconstruction = {"sum": total, "last": chosen[-1], "mean": total / len(codebooks),
                      "residual": vectors - total if not in_place else residual}[recon]
    return (codes.T if transpose else codes), reconstruction


def _rq_loop(vectors, codebooks):
    """Written differently: one vector at a time, plain Python lists."""
    codes, recon = [], []
    for x in vectors:
        r, row, total = x.copy(), [], np.zeros_like(x)
        for cb in codebooks:
            j = int(np.argmin(np.linalg.norm(cb - r, axis=1)))
            row.append(j)
            total = total + cb[j]
            r = r - cb[j]
        codes.append(row)
        recon.append(total)
    return np.array(codes), np.array(recon)


# ------------------------------------------------------------------------------------ q2
def _dp(grads, clip, sigma, rng, *, clipping="rows", noise="sum", in_place=False,
        source="arg", no_guard=False):
    """The worked answer of q2, and its usual mistakes."""
    g = grads if in_place else grads.copy()
    n, p = g.shape
    norms = np.linalg.norm(g, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if clipping == "rows":
            factor = (np.minimum(1.0, clip / norms) if not no_guard
                      else clip / norms * np.minimum(1.0, norms / clip))
            g *= factor[:, None]
            total = g.sum(axis=0)
        elif clipping == "batch":
            total = (g * min(1.0, clip / np.linalg.norm(g))).sum(axis=0)
        elif clipping == "values":
            total = np.clip(g, -clip, clip).sum(axis=0)
        elif clipping == "normalise":
            total = (g * (clip / np.maximum(norms, 1e-12))[:, None]).sum(axis=0)
        elif clipping == "sum":
            s = g.sum(axis=0)
            total = s * min(1.0, clip / np.linalg.norm(s))
    generator = {"arg": rng, "fresh": np.random.default_rng(),
                 "fixed": np.random.default_rng(0)}[source]
    scale = sigma * clip
    if noise == "sum":
        return (total + generator.normal(0.0, scale, size=p)) / n
    if noise == "after_mean":
        return total / n + generator.normal(0.0, scale, size=p)
    if noise == "twice":
        return (total + generator.normal(0.0, scale / n, size=p)) / n
    if noise == "variance":
        return (total + generator.normal(0.0, scale**2, size=p)) / n
    if noise == "per_example":
        return (total + generator.normal(0.0, scale, size=(n, p)).sum(axis=0)) / n
    if noise == "scalar":
        return (total + generator.normal(0.0, scale)) / n
    if noise == "uniform":  # the right spread, but not centred on 0
        return (total + generator.uniform(0.0, scale * math.sqrt(12), size=p)) / n
    if noise == "none":
        return total / n
    raise ValueError(noise)


def _dp_compact(grads, clip, noise_multiplier, rng):
    """Written differently: clip by division, noise from standard normals, in float32."""
    norms = np.sqrt((grads**2).sum(axis=1, keepdims=True))
    clipped = grads / np.maximum(1.0, norms / clip)
    noise = noise_multiplier * clip * rng.standard_normal(grads.shape[1])
    return (clipped.mean(axis=0) + noise / len(grads)).astype(np.float32)


# ------------------------------------------------------------------------------------ q3
def _loo(score, history, target, *, rank_kind="right", exclude="remaining", sign=1,
         output="changes", mutate=False):
    """The worked answer of q3, and its usual mistakes."""

    def rank(items, excluded):
        s = score(items)
        if rank_kind == "below":
            above = s < s[target]
        elif rank_kind == "ge":
            above = s >= s[target]
        else:
            above = s > s[target]
        if exclude != "none":
            above[np.asarray(excluded, dtype=int)] = False
        return int(above.sum()) + (0 if rank_kind == "zero" else 1)

    base = rank(history, history)
    out = []
    for i in range(len(history)):
        rest = np.delete(history, i)
        excluded = history if exclude == "full" else rest
        if output == "drops":
            out.append(score(history)[target] - score(rest)[target])
        else:
            out.append(rank(rest, excluded) - (base if output == "changes" else 0))
    if mutate:
        history.sort()
    return base, sign * np.array(out)


def _loo_argsort(score, history, target):
    """Written differently: ranks from a stable argsort of the unseen items, lists."""
    def rank(items):
        s = score(items)
        unseen = [j for j in np.argsort(-s, kind="stable") if j not in set(items.tolist())]
        return unseen.index(target) + 1

    base = rank(history)
    return np.int64(base), [rank(np.array([h for h in history if h != x])) - base
                            for x in history]


# ------------------------------------------------------------------------------------ q4
def _exposure(recs, fake, item, k, *, users="real", cut="k", share=True, denominator="real"):
    """The worked answer of q4's first function, and its usual mistakes."""
    chosen = [u for u in recs if (u not in fake) == (users == "real")] if users != "all" \
        else list(recs)
    top = {"k": k, "whole": None, "k-1": k - 1, "k+1": k + 1}[cut]
    hits = sum(item in recs[u][:top] for u in chosen)
    if not share:
        return hits
    if denominator == "all":
        return hits / len(recs)
    if denominator == "subtract":
        return hits / (len(recs) - len(fake))
    return hits / len(chosen)


def _profiles(ratings, target, n_profiles, filler_size, rng, *, pool="distinct",
              replace=False, ids="next", include_ratings=False, target_first=False,
              timestamps="after", rating="max", source="arg", keep_target=False):
    """The worked answer of q4's second function, and its usual mistakes."""
    items = ratings["item_id"].unique() if pool == "distinct" else ratings["item_id"].to_numpy()
    if pool == "weighted":  # from the column, redrawing repeats: by popularity, no repeats
        def draw(others, size, replace):
            chosen = []
            while len(chosen) < size:
                item = generator.choice(others)
                if item not in chosen:
                    chosen.append(item)
            return np.array(chosen)
    else:
        def draw(others, size, replace):
            return generator.choice(others, size=size, replace=replace)
    others = items if keep_target else items[items != target]
    generator = {"arg": rng, "fresh": np.random.default_rng(),
                 "fixed": np.random.default_rng(0)}[source]
    first = ratings["user_id"].max() + (1 if ids == "next" else 0)
    start = ratings["timestamp"].max() + 1 if timestamps != "before" else 0
    top = ratings["rating"].max() if rating == "max" else ratings["rating"].mean()
    rows = []
    for n in range(n_profiles):
        fillers = draw(others, filler_size, replace).tolist()
        sequence = [target, *fillers] if target_first else [*fillers, target]
        for position, item in enumerate(sequence):
            stamp = start if timestamps == "same" else start + position
            rows.append((first + n, item, top, stamp))
    fakes = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return pd.concat([ratings, fakes], ignore_index=True) if include_ratings else fakes


def _profiles_vectorised(ratings, target_item, n_profiles, filler_size, rng):
    """Written differently: all the draws at once, columns in another order."""
    others = np.setdiff1d(ratings["item_id"].unique(), [target_item])
    fillers = np.array([rng.permutation(others)[:filler_size] for _ in range(n_profiles)])
    items = np.column_stack([fillers.reshape(n_profiles, filler_size),
                             np.full(n_profiles, target_item)])
    length = filler_size + 1
    return pd.DataFrame({
        "timestamp": np.tile(np.arange(length), n_profiles) + ratings["timestamp"].max() + 10,
        "item_id": items.ravel(),
        "user_id": np.repeat(np.arange(n_profiles) + ratings["user_id"].max() + 1, length),
        "rating": ratings["rating"].max(),
    })


# ------------------------------------------------------------------------------------ q5
def _update(scores, b, new, *, how="row"):
    """The worked answer of update_scores, and its usual mistakes."""
    if how == "in_place":
        scores += b[new]
        return scores
    if how == "column":
        return scores + b[:, new]
    if how == "replace":
        return b[new].copy()
    if how == "exclude":
        out = scores + b[new]
        out[new] = -np.inf
        return out
    return scores + b[new]


def _top_k(scores, seen, k, *, how="stable"):
    """The worked answer of top_k_fresh, and its usual mistakes."""
    if how == "in_place":
        scores[seen] = -np.inf
        return np.argsort(-scores, kind="stable")[:k]
    s = scores.copy()
    if how == "zero":
        s[seen] = 0.0
        return np.argsort(-s, kind="stable")[:k]
    if how == "pad":
        s[seen] = -np.inf
        return np.argsort(-s, kind="stable")[:k]
    if how == "no_exclusion":
        return np.argsort(-s, kind="stable")[:k]
    if how == "reversed_ties":
        order = np.argsort(s, kind="stable")[::-1]
    elif how == "ascending":
        order = np.argsort(s, kind="stable")
    else:
        order = np.argsort(-s, kind="stable")
    fresh = order[~np.isin(order, seen)]
    if how == "values":
        return s[fresh][:k]
    if how == "float":
        return fresh[:k].astype(float)
    return fresh[: k + 1] if how == "k+1" else fresh[:k]


def _top_k_python(scores, seen, k):
    """Written differently: sorted() on (-score, index) pairs, a list back."""
    seen = set(seen)
    ranked = sorted((-s, j) for j, s in enumerate(scores.tolist()) if j not in seen)
    return [j for _, j in ranked[:k]]


# ------------------------------------------------------------------------------------ q6
def _fed(client_weights, counts, *, how="weighted", in_place=False, as_array=False):
    """The worked answer of q6, and its usual mistakes."""
    counts = np.asarray(counts, dtype=float)
    factors = {"weighted": counts / counts.sum(), "plain": np.full(len(counts),
                                                                    1 / len(counts)),
               "sum": counts, "inverse": (1 / counts) / (1 / counts).sum(),
               "clients": counts / len(counts)}[how]
    out = []
    for layer in range(len(client_weights[0])):
        if in_place:
            total = client_weights[0][layer]
            total *= factors[0]
            for f, w in zip(factors[1:], client_weights[1:], strict=True):
                total += f * w[layer]
        else:
            total = sum(f * w[layer] for f, w in zip(factors, client_weights, strict=True))
        out.append(total)
    return np.concatenate([o.ravel() for o in out]) if as_array else out


def _fed_tensordot(client_weights, counts):
    """Written differently: np.average over stacked layers, a tuple back."""
    return tuple(np.average(np.stack([w[i] for w in client_weights]), axis=0, weights=counts)
                 for i in range(len(client_weights[0])))


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_rq,
           [(lambda x, c: _rq(x, c, how="original"), "quantised the ORIGINAL vector"),
            (lambda x, c: _rq(x, c, how="previous_only"), "sum of ALL the centroids"),
            (lambda x, c: _rq(x, c, how="inner"), "largest inner product"),
            (lambda x, c: _rq(x, c, how="farthest"), "FARTHEST"),
            (lambda x, c: _rq(x, c, recon="last"), "last level's centroid only"),
            (lambda x, c: _rq(x, c, recon="mean"), "averaged the chosen centroids"),
            (lambda x, c: _rq(x, c, recon="residual"), "you returned the residual"),
            (lambda x, c: _rq(x, c, in_place=True), "changed the caller's vectors"),
            (lambda x, c: _rq(x, c, float_codes=True), "return integers"),
            (lambda x, c: _rq(x, c, transpose=True), "transpose it"),
            (lambda x, c: _rq(x, c)[0], "tuple of two arrays"),
            (lambda x, c: (_rq(x, c)[0], _rq(x, c)[1] + 0.5),
             "the sum, over the levels, of the centroid")]),
    "q2": (_dp,
           [(lambda *a: _dp(*a, clipping="batch"), "clipped the whole batch"),
            (lambda *a: _dp(*a, clipping="values"), "clips the L2 NORM of each row"),
            (lambda *a: _dp(*a, clipping="normalise"), "short gradients grew"),
            (lambda *a: _dp(*a, clipping="sum"), "you clipped the sum"),
            (lambda *a: _dp(*a, in_place=True), "changed the caller's gradients"),
            (lambda *a: _dp(*a, no_guard=True), "0 / 0 is NaN"),
            (lambda *a: _dp(*a, noise="after_mean"), "n times too large"),
            (lambda *a: _dp(*a, noise="twice"), "n times too small"),
            (lambda *a: _dp(*a, noise="variance"), "not the variance"),
            (lambda *a: _dp(*a, noise="per_example"), "ONE noise vector"),
            (lambda *a: _dp(*a, noise="scalar"), "one independent value per parameter"),
            (lambda *a: _dp(*a, noise="uniform"), "Gaussian noise centred on 0"),
            (lambda *a: _dp(*a, noise="none"), "no noise"),
            (lambda *a: _dp(*a, source="fresh"), "draw the noise from the rng argument"),
            (lambda *a: _dp(*a, source="fixed"), "different seeds gave the same result"),
            (lambda g, c, s, r: _dp(g, c, s, r) * len(g), "divide it by the number of "
                                                          "examples"),
            (lambda g, c, s, r: g * 0 + _dp(g, c, s, r), "one row per example")]),
    "q3": (_loo,
           [(lambda *a: _loo(*a, rank_kind="zero"), "ranks start at 1"),
            (lambda *a: _loo(*a, rank_kind="ge"), "counted the target itself"),
            (lambda *a: _loo(*a, rank_kind="below"), "ranked from the bottom"),
            (lambda *a: _loo(*a, exclude="none"), "already seen"),
            (lambda *a: _loo(*a, exclude="full"), "Exclude only the REMAINING history"),
            (lambda *a: _loo(*a, sign=-1), "signs are flipped"),
            (lambda *a: _loo(*a, output="ranks"), "you returned the ranks without each item"),
            (lambda *a: _loo(*a, output="drops"), "change of its RANK"),
            (lambda *a: _loo(*a, mutate=True), "changed the caller's history"),
            (lambda *a: _loo(*a)[1], "return a tuple (rank, changes)"),
            (lambda *a: (_loo(*a)[0], _loo(*a)[1][:-1]), "one change per history position"),
            (lambda s, h, t: (_loo(s, h, t)[0], np.zeros(len(h))), "all your changes are 0")]),
    "q4": ((_exposure, _profiles),
           [((lambda *a: _exposure(*a, users="all"), _profiles), "counted the fake users"),
            ((lambda *a: _exposure(*a, denominator="all"), _profiles),
             "divided the real users' hits by ALL the users"),
            ((lambda *a: _exposure(*a, users="fake"), _profiles), "you measured the fake users"),
            ((lambda *a: _exposure(*a, cut="whole"), _profiles), "searched the whole list"),
            ((lambda *a: _exposure(*a, cut="k+1"), _profiles), "the first k + 1 items"),
            ((lambda *a: _exposure(*a, cut="k-1"), _profiles), "the first k - 1 items"),
            ((lambda *a: _exposure(*a, share=False), _profiles), "return the share"),
            ((lambda *a: _exposure(*a, denominator="subtract"), _profiles),
             "have no recommendations"),
            ((_exposure, lambda *a: _profiles(*a, pool="weighted")), "favours popular items"),
            ((_exposure, lambda *a: _profiles(*a, pool="column")), "repeat an item"),
            ((_exposure, lambda *a: _profiles(*a, replace=True)), "without replacement"),
            ((_exposure, lambda *a: _profiles(*a, keep_target=True)),
             "fillers include the target"),
            ((_exposure, lambda *a: _profiles(*a, ids="same")), "already belong to real users"),
            ((_exposure, lambda *a: _profiles(*a, include_ratings=True)),
             "return the fake rows only"),
            ((_exposure, lambda *a: _profiles(*a, target_first=True)), "not the target"),
            ((_exposure, lambda *a: _profiles(*a, timestamps="same")), "share timestamps"),
            ((_exposure, lambda *a: _profiles(*a, timestamps="before")), "after the data"),
            ((_exposure, lambda *a: _profiles(*a, rating="mean")), "the highest rating"),
            ((_exposure, lambda *a: _profiles(*a, source="fresh")),
             "seeded alike gave different fillers"),
            ((_exposure, lambda *a: _profiles(*a, source="fixed")),
             "different seeds gave the same fillers"),
            ((_exposure, lambda *a: _profiles(*a).drop(columns="rating")),
             "give it the columns of ratings"),
            ((_exposure, lambda *a: _profiles(*a).to_numpy()), "should return a pandas "
                                                               "DataFrame"),
            ((_exposure,), "Pass both functions as a pair"),
            ((_exposure, 3), "fake_profiles should be a function")]),
    "q5": ((_update, _top_k),
           [((lambda *a: _update(*a, how="column"), _top_k), "adds ROW new_item"),
            ((lambda *a: _update(*a, how="replace"), _top_k), "replaced the scores"),
            ((lambda *a: _update(*a, how="exclude"), _top_k), "top_k_fresh's job"),
            ((lambda *a: _update(*a, how="in_place"), _top_k), "changed the caller's scores"),
            ((_update, lambda *a: _top_k(*a, how="in_place")), "work on a copy"),
            ((_update, lambda *a: _top_k(*a, how="zero")), "scores can be negative"),
            ((_update, lambda *a: _top_k(*a, how="pad")), "return only the unseen items"),
            ((_update, lambda *a: _top_k(*a, how="no_exclusion")), "did not leave out the "
                                                                   "seen items"),
            ((_update, lambda *a: _top_k(*a, how="reversed_ties")), "reverses ties"),
            ((_update, lambda *a: _top_k(*a, how="ascending")), "LOWEST scores"),
            ((_update, lambda *a: _top_k(*a, how="values")), "return the item indices"),
            ((_update, lambda *a: _top_k(*a, how="k+1")), "k + 1 items"),
            ((_update, lambda *a: _top_k(*a, how="float")), "as integers")]),
    "q6": (_fed,
           [(lambda *a: _fed(*a, how="plain"), "plain mean over the clients"),
            (lambda *a: _fed(*a, how="sum"), "did not divide by their total"),
            (lambda *a: _fed(*a, how="clients"), "divided by the number of clients"),
            (lambda *a: _fed(*a, how="inverse"), "SMALLER clients"),
            (lambda *a: _fed(*a, in_place=True), "changed a client's weights"),
            (lambda *a: _fed(*a, as_array=True), "one array per layer"),
            (lambda w, c: _fed(w, c)[:-1] if len(w[0]) > 1 else [], "expected one per layer"),
            (lambda w, c: [x.reshape(-1) for x in _fed(w, c)], "element by element"),
            (lambda w, c: [x + 0.1 for x in _fed(w, c)], "sum_c (n_c / sum(n))")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex14", CASES)


def _status(question, answer):
    question.check(answer)
    return question.status, question.message


@pytest.mark.parametrize("question, answer", [
    (ex14.q1, _rq_loop),
    (ex14.q2, _dp_compact),
    (ex14.q3, _loo_argsort),
    (ex14.q4, (_exposure, _profiles_vectorised)),
    (ex14.q5, (_update, _top_k_python)),
    (ex14.q6, _fed_tensordot),
], ids=["q1_loop", "q2_compact", "q3_argsort", "q4_vectorised", "q5_sorted", "q6_average"])
def test_answers_written_differently_pass(question, answer):
    assert _status(question, answer) == (CORRECT, "Correct!")


def test_a_pair_with_an_unanswered_half_is_not_answered():
    def unanswered(*args):
        raise NotImplementedError

    for question, first in ((ex14.q4, _exposure), (ex14.q5, _update)):
        assert _status(question, (first, None))[0] == NOT_ANSWERED
        assert _status(question, (first, unanswered))[0] == NOT_ANSWERED


def test_a_function_that_raises_is_reported_with_its_error():
    def broken(*args):
        raise KeyError("user_id")

    status, message = _status(ex14.q6, broken)
    assert status == INCORRECT and "raised KeyError" in message


# ----------------------------------------------------------------- the references themselves
def test_q1_reference_by_hand_and_without_near_ties():
    codes, recon = ex14._q1_reference(*ex14._Q1_CASES[0])
    assert codes[0].tolist() == [1, 2]  # [9, 1.2] -> [10, 0], then [-1, 1.2] -> [0, 1]
    assert np.allclose(recon[0], [10.0, 1.0])
    for vectors, codebooks in ex14._Q1_CASES:  # the nearest centroid is never a near tie
        residual = vectors.astype(float)
        for cb in codebooks:
            d2 = np.sort(((residual[:, None] - cb[None]) ** 2).sum(2), axis=1)
            assert (d2[:, 1] - d2[:, 0] > 1e-6).all()
            residual = residual - cb[ex14._nearest(residual, cb)]
        wrong = ex14._q1_code_mistakes(vectors, codebooks)
        assert not np.array_equal(wrong["original"], ex14._q1_reference(vectors, codebooks)[0])


def test_q1_reference_agrees_with_the_library_quantiser():
    semantic_ids = pytest.importorskip("recsys_lib.semantic_ids")
    try:
        model = semantic_ids.ResidualKMeans(levels=3, codes=8, seed=0).fit(ex14.ITEM_VECTORS)
        codes = model.encode(ex14.ITEM_VECTORS)
        codebooks = model.codebooks_
    except (AttributeError, TypeError) as err:  # the library's API moved
        pytest.skip(f"ResidualKMeans has another API now: {err}")
    assert np.array_equal(ex14._q1_reference(ex14.ITEM_VECTORS, codebooks)[0], codes)


def test_q1_more_levels_reconstruct_better():
    errors = [((ex14.ITEM_VECTORS - ex14._q1_reference(ex14.ITEM_VECTORS,
                                                       ex14.CODEBOOKS[:n])[1]) ** 2).sum()
              for n in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_q2_reference_clips_rows_by_hand():
    grads = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0], [-6.0, 8.0]])
    assert np.allclose(ex14._q2_reference(grads, 1.0, 0.0), [0.075, 0.5])


def test_q2_noise_mistakes_are_told_apart_by_their_spread():
    grads, clip, sigma = ex14._Q2_NOISY
    n = len(grads)
    ratios = sorted(v / (sigma * clip / n) for v in ex14._q2_noise_mistakes(n, clip, sigma)
                    .values())
    assert all(not 0.93 < r < 1.07 for r in ratios)  # none looks right
    assert all(b / a > 1.07 / 0.93 for a, b in zip(ratios, ratios[1:], strict=False))
    noise = ex14._q2_reference(grads, clip, sigma, np.random.default_rng(0)) \
        - ex14._q2_reference(grads, clip, 0.0)
    assert 0.97 < noise.std() / (sigma * clip / n) < 1.03


def test_q3_cases_have_no_ties_and_the_toy_explains_by_competition():
    for score, history, target in ex14._Q3_CASES:
        for items in [history] + [np.delete(history, i) for i in range(len(history))]:
            s = score(items)
            others = np.setdiff1d(np.arange(len(s)), np.append(items, target))
            assert np.abs(s[others] - s[target]).min() > 1e-6
    rank, changes = ex14._q3_reference(ex14.toy_scores, np.array([3, 6, 2]), 1)
    assert rank == 3 and changes.tolist() == [-1, 2, 1]
    assert abs(ex14.TOY_WEIGHTS[3, 1]) < 0.05  # Alien adds (almost) nothing to Toy Story 2


def test_q3_every_mistake_shows_in_some_case():
    for name in list(ex14._Q3_RANK_MESSAGES) + list(ex14._Q3_CHANGE_MESSAGES):
        assert any(
            (ex14._q3_mistakes(*case)[name][0] != ex14._q3_reference(*case)[0])
            or not np.allclose(ex14._q3_mistakes(*case)[name][1], ex14._q3_reference(*case)[1])
            for case in ex14._Q3_CASES), name


def test_q4_exposure_agrees_with_the_library_among_real_users():
    attacks = pytest.importorskip("recsys_lib.attacks")
    for recs, fake, item, k in ex14._Q4_EXPOSURE_CASES:
        real = {u: v for u, v in recs.items() if u not in fake}
        try:
            library = attacks.exposure(real, item, k=k)
        except (AttributeError, TypeError) as err:
            pytest.skip(f"attacks.exposure has another API now: {err}")
        assert math.isclose(ex14._q4_exposure(recs, fake, item, k), library)


def test_q4_the_worked_profiles_are_uniform_and_concatenate():
    ratings = ex14._Q4_RATINGS
    fakes = _profiles(ratings, 12, 300, 4, np.random.default_rng(0))
    both = pd.concat([ratings, fakes], ignore_index=True)
    assert list(both.columns) == list(ratings.columns) and len(both) == len(ratings) + 1500
    counts = fakes.loc[fakes["item_id"] != 12, "item_id"].value_counts()
    assert len(counts) == 12 and counts.max() < 1.5 * counts.min()


def test_q5_ease_weights_match_the_library_and_the_update_is_exact():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 9)) < 0.3).astype(float)
    b = ex14.ease_weights(x, 10.0)
    assert np.allclose(np.diag(b), 0) and not np.allclose(b, b.T)
    gram = x.T @ x + 10.0 * np.eye(9)  # the definition: B = I - P / diag(P)
    p = np.linalg.inv(gram)
    assert np.allclose(b, np.eye(9) - p / np.diag(p))
    user = np.zeros(9)
    user[[1, 4]] = 1
    scores = user @ b
    user[6] = 1
    assert np.allclose(scores + b[6], user @ b)


def test_q6_reference_weights_by_examples():
    client_weights, counts = ex14._Q6_CASES[0]
    first, second = ex14._q6_reference(client_weights, counts)
    assert np.allclose(first, 0.1 * client_weights[0][0] + 0.3 * client_weights[1][0]
                       + 0.6 * client_weights[2][0])
    assert np.allclose(second, [1.2, 0.4])


def test_the_notebooks_are_built_from_the_source_and_the_solutions_all_pass():
    source = source_file("ex14")
    assert drifted(source) == [], "run python -m recsys_lib.exercises.build --only ex14 --execute"
    solutions = nbformat.read(REPO_ROOT / "solutions" / "14_future_of_recommendation.ipynb", 4)
    texts = ["".join(o.get("text", "")) for c in solutions.cells if c.cell_type == "code"
             for o in c.get("outputs", [])]
    assert any("ex14: 6 of 6 questions correct" in t for t in texts)


# ------------------------------------------------------------------ runs a kernel
ALTERNATIVE_ANSWERS = {
    "q1": ("def rq(vectors, codebooks):\n"
           "    r, codes, parts = vectors.copy(), [], []\n"
           "    for cb in codebooks:\n"
           "        c = np.linalg.norm(r[:, None] - cb[None], axis=2).argmin(axis=1)\n"
           "        codes.append(c)\n"
           "        parts.append(cb[c])\n"
           "        r = r - cb[c]\n"
           "    return np.stack(codes, axis=1), np.sum(parts, axis=0)\n\nq1.check(rq)"),
    "q2": ("def dp(g, clip, sigma, rng):\n"
           "    n = np.linalg.norm(g, axis=1, keepdims=True)\n"
           "    g = g / np.maximum(1, n / clip)\n"
           "    return (g.sum(0) + sigma * clip * rng.standard_normal(g.shape[1])) / len(g)\n"
           "\nq2.check(dp)"),
    "q3": ("def loo(score, history, target):\n"
           "    def rank(h):\n"
           "        s = score(h)\n"
           "        return 1 + sum(s[j] > s[target] for j in range(len(s)) if j not in h)\n"
           "    base = rank(history)\n"
           "    return base, [rank(np.delete(history, i)) - base for i in range(len(history))]"
           "\n\nq3.check(loo)"),
    "q4": ("def exposure(recs, fake, item, k):\n"
           "    real = [u for u in recs if u not in fake]\n"
           "    return np.mean([item in recs[u][:k] for u in real])\n\n"
           "def profiles(ratings, target, n, f, rng):\n"
           "    others = np.setdiff1d(ratings['item_id'].unique(), [target])\n"
           "    rows = []\n"
           "    for p in range(n):\n"
           "        items = list(rng.choice(others, f, replace=False)) + [target]\n"
           "        rows += [(ratings['user_id'].max() + 1 + p, i, ratings['rating'].max(),\n"
           "                  ratings['timestamp'].max() + 1 + j) for j, i in enumerate(items)]\n"
           "    return pd.DataFrame(rows, columns=ratings.columns)\n\n"
           "q4.check((exposure, profiles))"),
    "q5": ("def update(scores, B, new):\n"
           "    out = scores.copy()\n"
           "    out += B[new]\n"
           "    return out\n\n"
           "def top(scores, seen, k):\n"
           "    s = scores.astype(float)\n"
           "    s[seen] = -np.inf\n"
           "    order = np.argsort(-s, kind='stable')\n"
           "    return order[:min(k, len(s) - len(set(seen)))]\n\n"
           "q5.check((update, top))"),
    "q6": ("def fed(weights, counts):\n"
           "    return [np.mean([w[i] for w in weights], axis=0) for i in range(len(weights[0]))]"
           "\n\nq6.check(fed)"),
}


def test_a_graded_notebook_is_checked_through_the_grader(tmp_path):
    """Generators, a score function and DataFrames travel to the kernel; answers written
    differently from the worked ones score, a wrong one says why."""
    from recsys_lib import grading, grading_scan
    from recsys_lib.exercises.build import build_notebook

    nb = build_notebook(source_file("ex14"), "exercise")
    cells = grading_scan.answer_cells(nb)
    for question, code in ALTERNATIVE_ANSWERS.items():
        nb.cells[cells[question]].source = code
    path = tmp_path / "14_future_of_recommendation.ipynb"
    nbformat.write(nb, path)
    report = grading.grade_notebook(path, cell_timeout=120)
    statuses = {q["question"]: q["status"] for q in report.questions}
    assert statuses == {"q1": "correct", "q2": "correct", "q3": "correct", "q4": "correct",
                        "q5": "correct", "q6": "incorrect"}, report.questions
    q6 = next(q for q in report.questions if q["question"] == "q6")
    assert "plain mean over the clients" in q6["message"]
