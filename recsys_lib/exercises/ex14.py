"""Checks for the exercises of notebook 14 (the future of recommendation, measured).

Used by ``exercises/14_future_of_recommendation.ipynb``:
``from recsys_lib.exercises.ex14 import *``. Every expected value is computed here, by
self-contained reference implementations (NumPy and pandas only, so that the checks do not
move when the course library's own modules change), on hand-made and seeded random inputs:

* question 1 (residual quantisation: the codes of a semantic ID and the reconstruction),
  greedily level by level, each level quantising what the previous ones left over;
* question 2 (DP-SGD's clipping and noise) exactly without noise, and with noise by the
  spread of the noise over thousands of coordinates, which must be ``sigma C / n``;
* question 3 (leave-one-out attribution by rank) on a bag-of-items toy model, with ranks over
  the catalogue and the remaining history excluded;
* question 4 (a shilling attack: fake profiles, and the target's exposure among real users)
  by the properties the profiles must have (new ids, distinct uniform fillers, the target
  last), since the fillers are random;
* question 5 (real-time EASE: add one item to a user's scores, then the top k unseen items)
  against a full recomputation ``x @ B`` after every click;
* question 6 (federated averaging) as the example-weighted mean of the clients' weights.

Each wrong answer is compared with the usual mistakes, computed on the same inputs, so the
feedback can name the one that was made. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import numpy as np
import pandas as pd

from recsys_lib.exercises.core import (
    ExerciseSet,
    Incorrect,
    NotAnswered,
    Question,
    call_answer,
)

__all__ = ["q1", "q2", "q3", "q4", "q5", "q6", "summary", "assert_all_correct", "EXERCISES",
           "ITEM_VECTORS", "CODEBOOKS", "TOY_TITLES", "TOY_WEIGHTS", "toy_scores",
           "ease_weights"]


# --------------------------------------------------------------------------- shared helpers
def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _unwrap(value):
    """A one-element NumPy array or NumPy scalar as a plain Python number."""
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same(a, b, rtol: float = 1e-7) -> bool:
    """Two arrays of the same shape and (nearly) the same values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=1e-9))


def _first_match(got, variants: dict[str, object], same: Callable[[object, object], bool],
                 want) -> str | None:
    """The first named mistake whose value equals ``got`` (mistakes equal to ``want`` skipped)."""
    for name, value in variants.items():
        if value is not None and not same(value, want) and same(got, value):
            return name
    return None


def _array(result, what: str) -> np.ndarray:
    """The learner's result as a float array, or Incorrect saying what came back."""
    if isinstance(result, dict | set | str) or result is None:
        raise Incorrect(f"{what} should return a NumPy array, got {type(result).__name__}")
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(f"{what} should return a NumPy array of numbers, got "
                        f"{type(result).__name__}") from None
    return arr


def _show(arr, digits: int = 4) -> str:
    """A short text of an array for a message."""
    arr = np.asarray(arr)
    if arr.size > 12:
        return f"an array of shape {arr.shape}"
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return str(arr.astype(np.int64).tolist())  # whole numbers (ranks, indices) as ints
    if arr.dtype.kind == "f":
        return str(np.round(arr, digits).tolist())
    return str(arr.tolist())


def _pair(answer, question: str, names: tuple[str, str]) -> tuple:
    """The two functions of a question answered as a pair."""
    if answer is None or answer is Ellipsis:
        raise NotAnswered()
    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        raise Incorrect(f"Pass both functions as a pair: {question}.check(({names[0]}, "
                        f"{names[1]}))")
    first, second = answer
    for func, name in zip(answer, names, strict=True):
        if func is None or func is Ellipsis:
            raise NotAnswered()
        if not callable(func):
            raise Incorrect(f"{name} should be a function, got {type(func).__name__}")
    return first, second


# ----------------------------------------------------------------------------------- q1
def _nearest(residual: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean distance) to each row."""
    d2 = ((residual[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=2)
    return d2.argmin(axis=1)


def _q1_reference(vectors, codebooks) -> tuple[np.ndarray, np.ndarray]:
    residual = np.array(vectors, dtype=float)  # a copy: the caller's array stays as it is
    codes = np.empty((len(residual), len(codebooks)), dtype=np.int64)
    reconstruction = np.zeros_like(residual)
    for level, codebook in enumerate(codebooks):
        codes[:, level] = _nearest(residual, codebook)
        reconstruction += codebook[codes[:, level]]
        residual -= codebook[codes[:, level]]
    return codes, reconstruction


def _q1_code_mistakes(vectors, codebooks) -> dict[str, np.ndarray]:
    x = np.asarray(vectors, dtype=float)
    levels = len(codebooks)
    original = np.column_stack([_nearest(x, cb) for cb in codebooks])
    previous_only = np.empty((len(x), levels), dtype=np.int64)
    residual = x
    for level, cb in enumerate(codebooks):
        previous_only[:, level] = _nearest(residual, cb)
        residual = x - cb[previous_only[:, level]]  # forgets the levels before
    inner, farthest, manhattan = (np.empty((len(x), levels), dtype=np.int64) for _ in range(3))
    for out, pick in ((inner, lambda r, cb: (r @ cb.T).argmax(axis=1)),
                      (farthest, lambda r, cb: ((r[:, None] - cb[None]) ** 2).sum(2)
                       .argmax(axis=1)),
                      (manhattan, lambda r, cb: np.abs(r[:, None] - cb[None]).sum(2)
                       .argmin(axis=1))):
        residual = x.copy()
        for level, cb in enumerate(codebooks):
            out[:, level] = pick(residual, cb)
            residual = residual - cb[out[:, level]]
    return {"original": original, "previous_only": previous_only, "inner_product": inner,
            "farthest": farthest, "manhattan": manhattan}


_Q1_CODE_MESSAGES = {
    "original": "you quantised the ORIGINAL vector at every level. Residual quantisation "
                "quantises what is left over: level 1 picks the centroid nearest to x, "
                "level 2 the centroid nearest to the residual r = x - (level 1's centroid), "
                "and so on, so each level refines the previous ones",
    "previous_only": "from level 3 on your residual is x minus the previous level's centroid "
                     "only; the residual is x minus the sum of ALL the centroids chosen so "
                     "far (update it in place of x: residual = residual - centroid)",
    "inner_product": "you picked the centroid with the largest inner product; the nearest "
                     "centroid is the one at the smallest Euclidean distance "
                     "||r - c||^2 (they differ when the centroids have different lengths)",
    "farthest": "you picked the FARTHEST centroid: take the argmin of the distances, not "
                "the argmax",
    "manhattan": "you measured the distance as the sum of absolute differences; use the "
                 "Euclidean distance, the sum of squared differences",
}

_Q1_RECON_MESSAGES = {
    "last_only": "your reconstruction is the last level's centroid only; it is the SUM of "
                 "the chosen centroids of every level",
    "first_only": "your reconstruction is the first level's centroid only; it is the SUM of "
                  "the chosen centroids of every level",
    "residual": "you returned the residual, what is left over (x minus the reconstruction); "
                "the reconstruction is the sum of the chosen centroids",
    "mean": "you averaged the chosen centroids; the reconstruction is their SUM (each level "
            "adds a correction to the levels before)",
    "vectors": "you returned the vectors themselves; the reconstruction is what the codes "
               "give back: the sum of the chosen centroids",
}


def _q1_recon_mistakes(vectors, codebooks, codes) -> dict[str, np.ndarray]:
    x = np.asarray(vectors, dtype=float)
    chosen = [cb[codes[:, level]] for level, cb in enumerate(codebooks)]
    total = np.sum(chosen, axis=0)
    return {"last_only": chosen[-1], "first_only": chosen[0], "residual": x - total,
            "mean": total / len(codebooks), "vectors": x}


def _q1_random_case(seed: int, n: int, d: int, sizes: tuple[int, ...]) -> tuple:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, d))
    # Codebooks whose spread shrinks level by level, as residual k-means gives them, and
    # whose centroids have different lengths (so "largest inner product" is a mistake).
    codebooks = [rng.normal(scale=0.6**level, size=(k, d)) * rng.uniform(0.5, 1.5, (k, 1))
                 for level, k in enumerate(sizes)]
    return vectors, codebooks


_Q1_CASES = [
    (np.array([[9.0, 1.2], [1.0, 9.4], [0.8, -0.3], [10.3, 0.9], [-0.4, 10.6]]),
     [np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]),
      np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])]),
    (np.array([[2.1, 0.2, -0.9], [-1.7, 1.1, 0.3], [0.4, -2.2, 1.6]]),
     [np.array([[2.0, 0.0, -1.0], [-2.0, 1.0, 0.0], [0.0, -2.0, 2.0]]),
      np.array([[0.5, 0.5, 0.0], [-0.4, 0.0, 0.5], [0.0, -0.5, -0.5]]),
      np.array([[0.1, 0.0, 0.0], [0.0, -0.1, 0.0], [-0.1, 0.1, 0.1]])]),
    _q1_random_case(141, 40, 6, (8, 6, 4)),
    _q1_random_case(142, 25, 3, (5, 5, 5, 5)),
]


def _check_residual_quantise(func) -> None:
    for number, (vectors, codebooks) in enumerate(_Q1_CASES, start=1):
        given_x = vectors.copy()
        given_cb = [cb.copy() for cb in codebooks]
        got = call_answer(func, given_x, given_cb)
        n, d = vectors.shape
        levels = len(codebooks)
        where = (f"For case {number} ({n} vectors of dimension {d}, {levels} codebooks of "
                 f"{[len(cb) for cb in codebooks]} centroids)")
        if not np.array_equal(given_x, vectors) or not all(
                np.array_equal(a, b) for a, b in zip(given_cb, codebooks, strict=True)):
            raise Incorrect(f"{where} your function changed the caller's vectors or "
                            "codebooks. `residual = vectors` does not copy: start from "
                            "residual = vectors.copy() (or residual = residual - centroid, "
                            "which makes a new array)")
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise Incorrect(f"{where} return a tuple of two arrays (codes, reconstruction), "
                            f"got {type(got).__name__}")
        codes, recon = _array(got[0], "the codes"), _array(got[1], "the reconstruction")
        if codes.shape != (n, levels):
            why = (": one row per vector and one column per level; transpose it"
                   if codes.shape == (levels, n) else
                   ": one row per vector, one column per level")
            raise Incorrect(f"{where} your codes have shape {codes.shape}, expected "
                            f"({n}, {levels}){why}")
        if recon.shape != (n, d):
            raise Incorrect(f"{where} your reconstruction has shape {recon.shape}, expected "
                            f"({n}, {d}), like the vectors")
        raw_codes = np.asarray(got[0])
        if raw_codes.dtype.kind not in "iu":
            raise Incorrect(f"{where} your codes have dtype {raw_codes.dtype}: they are "
                            "centroid indices, the tokens of a semantic ID; return integers "
                            "(np.zeros((n, levels), dtype=int), or .argmin's own integers)")
        want_codes, want_recon = _q1_reference(vectors, codebooks)
        if not np.array_equal(codes, want_codes):
            rows, cols = np.nonzero(codes != want_codes)
            first = f"vector {rows[0]}, level {cols[0] + 1}: you chose centroid " \
                    f"{int(codes[rows[0], cols[0]])}, expected {want_codes[rows[0], cols[0]]}"
            mistakes = _q1_code_mistakes(vectors, codebooks)
            name = _first_match(codes, mistakes, np.array_equal, want_codes)
            why = (_Q1_CODE_MESSAGES[name] if name else
                   "at each level choose the centroid nearest (smallest squared Euclidean "
                   "distance) to the current residual, then subtract it from the residual")
            raise Incorrect(f"{where} your codes are wrong ({first}): {why}")
        if not _same(recon, want_recon):
            mistakes = _q1_recon_mistakes(vectors, codebooks, want_codes)
            name = _first_match(recon, mistakes, _same, want_recon)
            why = (_Q1_RECON_MESSAGES[name] if name else
                   "the reconstruction of a vector is the sum, over the levels, of the "
                   "centroid its code chooses: codebooks[0][c0] + codebooks[1][c1] + ...")
            raise Incorrect(f"{where} your codes are right but your reconstruction is wrong: "
                            f"{why}")


def _lloyd_codebooks(vectors: np.ndarray, levels: int, k: int, seed: int,
                     iterations: int = 15) -> list[np.ndarray]:
    """Residual k-means in a few lines: each level clusters what the levels before left."""
    rng = np.random.default_rng(seed)
    residual = vectors.copy()
    codebooks = []
    for _ in range(levels):
        centroids = residual[rng.choice(len(residual), size=k, replace=False)].copy()
        for _ in range(iterations):
            labels = _nearest(residual, centroids)
            for j in range(k):
                if (labels == j).any():
                    centroids[j] = residual[labels == j].mean(axis=0)
        residual = residual - centroids[_nearest(residual, centroids)]
        codebooks.append(centroids)
    return codebooks


def _item_vectors() -> np.ndarray:
    """300 item vectors in 8 dimensions, in 12 loose clusters (stand-ins for text embeddings)."""
    rng = np.random.default_rng(14)
    centres = rng.normal(size=(12, 8))
    return centres[rng.integers(0, 12, size=300)] + rng.normal(scale=0.35, size=(300, 8))


#: Question 1's demonstration: 300 item vectors and 3 codebooks of 8 centroids learnt on them.
ITEM_VECTORS = _item_vectors()
CODEBOOKS = _lloyd_codebooks(ITEM_VECTORS, levels=3, k=8, seed=0)


# ----------------------------------------------------------------------------------- q2
def _clip_rows(g: np.ndarray, clip: float) -> np.ndarray:
    norms = np.linalg.norm(g, axis=1)
    factor = np.minimum(1.0, clip / np.maximum(norms, 1e-300))
    return g * factor[:, None]


def _q2_reference(grads, clip: float, noise_multiplier: float,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    g = np.asarray(grads, dtype=float)
    total = _clip_rows(g, clip).sum(axis=0)
    if noise_multiplier > 0:
        total = total + rng.normal(0.0, noise_multiplier * clip, size=total.shape)
    return total / len(g)


def _q2_clip_mistakes(grads, clip: float) -> dict[str, np.ndarray]:
    g = np.asarray(grads, dtype=float)
    n = len(g)
    norms = np.linalg.norm(g, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        whole = np.linalg.norm(g)
        batch_norm = g * min(1.0, clip / whole) if whole else g
        total = g.sum(axis=0)
        total_norm = np.linalg.norm(total)
        clip_sum = total * min(1.0, clip / total_norm) if total_norm else total
        mean = total / n
        mean_norm = np.linalg.norm(mean)
        clip_mean = mean * min(1.0, clip / mean_norm) if mean_norm else mean
        safe = np.maximum(norms, 1e-300)  # a zero row stays zero in every variant
        normalise = g * (clip / safe)[:, None]
        maximum = g * np.maximum(1.0, clip / safe)[:, None]
        squared = g * np.minimum(1.0, clip / safe**2)[:, None]
        columns = g * np.minimum(1.0, clip / np.linalg.norm(g, axis=0))[None, :]
    return {
        "batch_norm": batch_norm.sum(axis=0) / n,
        "clip_sum": clip_sum / n,
        "clip_mean": clip_mean,
        "value_clip": np.clip(g, -clip, clip).sum(axis=0) / n,
        "normalise": normalise.sum(axis=0) / n,
        "maximum": maximum.sum(axis=0) / n,
        "squared_norm": squared.sum(axis=0) / n,
        "columns": columns.sum(axis=0) / n,
        "sum": _clip_rows(g, clip).sum(axis=0),
        "no_clip": g.sum(axis=0) / n,
    }


_Q2_CLIP_MESSAGES = {
    "batch_norm": "you clipped the whole batch by its total norm; DP-SGD clips EACH "
                  "example's gradient (each row) to norm <= clip, so that no single example "
                  "can move the sum by more than clip: norms = np.linalg.norm(g, axis=1)",
    "clip_sum": "you clipped the sum; clip each example's gradient (each row) before "
                "summing, so that one example changes the sum by at most clip",
    "clip_mean": "you clipped the mean; clip each example's gradient (each row) before "
                 "summing, so that one example changes the sum by at most clip",
    "value_clip": "np.clip clips each number separately; DP-SGD clips the L2 NORM of each "
                  "row: multiply the row by min(1, clip / ||row||), which keeps its direction",
    "normalise": "you scaled every row to norm exactly clip, so short gradients grew; "
                 "clipping only shrinks the rows LONGER than clip: min(1, clip / norm)",
    "maximum": "use min(1, clip / norm), not max: a row longer than clip must shrink, a "
               "shorter one stays as it is",
    "squared_norm": "you divided by the squared norm; the L2 norm is the square root of the "
                    "sum of squares, np.linalg.norm(g, axis=1)",
    "columns": "you took the norm of each column (axis=0); each ROW is one example's "
               "gradient, so its norm is np.linalg.norm(g, axis=1)",
    "sum": "you returned the noisy sum; divide it by the number of examples n to get the "
           "mean gradient",
    "no_clip": "you did not clip: multiply each row by min(1, clip / ||row||) before summing",
}


def _q2_noise_mistakes(n: int, clip: float, sigma: float) -> dict[str, float]:
    """Spread of the noise in the returned mean, for the usual mistakes."""
    return {
        "not_divided": sigma * clip,
        "divided_twice": sigma * clip / n**2,
        "no_clip_factor": sigma / n,
        "variance_as_std": (sigma * clip) ** 2 / n,
        "per_example": sigma * clip / math.sqrt(n),
        "sigma_only": sigma,
    }


_Q2_NOISE_MESSAGES = {
    "not_divided": "your noise is n times too large: you added N(0, (sigma clip)^2) after "
                   "dividing by n. Add it to the SUM, then divide the noisy sum by n",
    "divided_twice": "your noise is n times too small: you scaled it by 1/n and then divided "
                     "the noisy sum by n again. Add N(0, (sigma clip)^2) to the sum, then "
                     "divide once",
    "no_clip_factor": "your noise has standard deviation sigma, not sigma * clip: the noise "
                      "must hide one example's largest possible change of the sum, which is "
                      "clip",
    "variance_as_std": "rng.normal's second argument is the standard deviation, "
                       "noise_multiplier * clip, not the variance (noise_multiplier * clip)^2",
    "per_example": "you added noise to every example; DP-SGD adds ONE noise vector to the "
                   "sum of the clipped gradients (its spread does not grow with n, so a "
                   "larger batch has relatively less noise)",
    "sigma_only": "your noise has standard deviation sigma and was not divided by n: add "
                  "N(0, (sigma clip)^2) to the sum, then divide by n",
}

_Q2_RNG = np.random.default_rng(1402)
#: (per-example gradients, clip) for the noiseless cases
_Q2_EXACT = [
    (np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0], [-6.0, 8.0]]), 1.0),
    (np.array([[0.1, -0.2, 0.05], [0.0, 0.3, -0.1]]), 1.0),  # nothing to clip
    (_Q2_RNG.normal(size=(16, 10)) * _Q2_RNG.choice([0.05, 0.5], size=(16, 1)), 0.6),
    (_Q2_RNG.normal(size=(5, 7)) * 2.0, 1.5),
]
#: the noisy case: many coordinates, so the noise's spread can be measured in one call
_Q2_NOISY = (_Q2_RNG.normal(scale=0.01, size=(8, 6000))
             * _Q2_RNG.choice([0.1, 1.0], size=(8, 1)), 0.3, 1.5)


def _check_privatize(func) -> None:
    for number, (grads, clip) in enumerate(_Q2_EXACT, start=1):
        given = grads.copy()
        got = call_answer(func, given, clip, 0.0, np.random.default_rng(number))
        n, p = grads.shape
        where = (f"With noise_multiplier=0, clip={clip:g} and {n} per-example gradients of "
                 f"{p} numbers (case {number})")
        if not np.array_equal(given, grads):
            raise Incorrect(f"{where} your function changed the caller's gradients (clipping "
                            "in place, g *= ...): make a new array, g * factor[:, None]")
        got = _array(got, "privatize")
        want = _q2_reference(grads, clip, 0.0)
        if got.shape != want.shape:
            why = (": that is one row per example; sum over the examples (axis=0)"
                   if got.shape == grads.shape else "")
            raise Incorrect(f"{where} you returned shape {got.shape}, expected ({p},), one "
                            f"number per parameter{why}")
        if np.isnan(got).any():
            raise Incorrect(f"{where} your result has NaN: a gradient of zeros has norm 0, "
                            "and 0 / 0 is NaN. Use min(1, clip / norm), which is 1 for a "
                            "zero row (np.minimum(1, clip / norms) gives inf -> 1), or "
                            "np.maximum(norms, 1e-12) in the division")
        same = functools.partial(_same, rtol=1e-6)  # float32 answers are fine
        if same(got, want):
            continue
        name = _first_match(got, _q2_clip_mistakes(grads, clip), same, want)
        why = (_Q2_CLIP_MESSAGES[name] if name else
               "clip each row to norm <= clip (multiply by min(1, clip / ||row||)), sum "
               "the rows, add the noise, divide by n")
        raise Incorrect(f"{where} you returned {_show(got)}, expected {_show(want)}: {why}")

    grads, clip, sigma = _Q2_NOISY
    n, p = grads.shape
    where = f"With noise_multiplier={sigma:g}, clip={clip:g} and n={n} examples of {p} numbers"
    first = _array(call_answer(func, grads.copy(), clip, sigma, np.random.default_rng(7)),
                   "privatize")
    again = _array(call_answer(func, grads.copy(), clip, sigma, np.random.default_rng(7)),
                   "privatize")
    other = _array(call_answer(func, grads.copy(), clip, sigma, np.random.default_rng(8)),
                   "privatize")
    if first.shape != (p,):
        raise Incorrect(f"{where} you returned shape {first.shape}, expected ({p},)")
    if not _same(first, again, rtol=1e-12):
        raise Incorrect(f"{where} two calls with generators seeded alike gave different "
                        "results: draw the noise from the rng argument (rng.normal(...)), "
                        "not from np.random or a generator of your own")
    if _same(first, other, rtol=1e-12):
        raise Incorrect(f"{where} generators with different seeds gave the same result: "
                        + ("you added no noise" if _same(first, _q2_reference(grads, clip, 0))
                           else "draw the noise from the rng argument"))
    noise = first - _q2_reference(grads, clip, 0.0)
    want = sigma * clip / n
    spread, centre = float(noise.std()), float(noise.mean())
    text = (f"{where} the noise in your result (result minus the clipped mean) has standard "
            f"deviation {spread:.4g}, expected noise_multiplier * clip / n = {want:.4g}")
    if spread < 1e-3 * want:
        if np.abs(noise).max() > 1e-3 * want:
            raise Incorrect(f"{where} your noise is the same number on every coordinate: "
                            "draw one independent value per parameter, rng.normal(0, "
                            f"noise_multiplier * clip, size={p})")
        raise Incorrect(f"{where} your result has no noise: add "
                        "rng.normal(0, noise_multiplier * clip, size=p) to the sum of the "
                        "clipped gradients")
    if not 0.93 < spread / want < 1.07:
        mistakes = _q2_noise_mistakes(n, clip, sigma)
        name = next((k for k, v in mistakes.items() if 0.93 < spread / v < 1.07), None)
        raise Incorrect(f"{text}: " + (_Q2_NOISE_MESSAGES[name] if name else
                                        "add N(0, (noise_multiplier * clip)^2) to each "
                                        "coordinate of the sum, then divide by n"))
    if abs(centre) > 0.1 * want:
        raise Incorrect(f"{where} your noise has mean {centre:.4g}, not 0: use Gaussian "
                        "noise centred on 0, rng.normal(0.0, noise_multiplier * clip, size=p)")


# ----------------------------------------------------------------------------------- q3
def _bag_of_items_scores(history, weights: np.ndarray) -> np.ndarray:
    """A bag-of-items model: item j's score is the sum of weights[i, j] over the history."""
    index = np.asarray(history, dtype=np.int64).reshape(-1)
    return weights[index].sum(axis=0)


#: Question 3's toy catalogue: item index -> title.
TOY_TITLES = ["Toy Story", "Toy Story 2", "Finding Nemo", "Alien", "Aliens",
              "The Terminator", "Up", "Heat"]


def _toy_weights() -> np.ndarray:
    w = np.zeros((8, 8))
    links = {  # (from a history item, to a scored item): weight
        (0, 1): 3.0, (0, 2): 1.5, (0, 6): 1.2, (1, 0): 3.0, (1, 2): 1.3, (1, 6): 1.0,
        (2, 0): 1.4, (2, 1): 1.2, (2, 6): 1.6, (3, 4): 3.5, (3, 5): 2.0, (3, 7): 0.8,
        (4, 3): 3.2, (4, 5): 2.2, (5, 3): 1.5, (5, 4): 1.8, (5, 7): 1.2, (6, 0): 1.0,
        (6, 1): 1.1, (6, 2): 1.7, (7, 3): 0.5, (7, 5): 1.0,
    }
    for (i, j), value in links.items():
        w[i, j] = value
    # small distinct values elsewhere, so that no two scores tie
    w += (np.arange(64).reshape(8, 8) % 7) * 0.003
    np.fill_diagonal(w, 0.0)
    return w


#: Weights of the toy model: ``TOY_WEIGHTS[i, j]`` is what history item i adds to item j.
TOY_WEIGHTS = _toy_weights()


def toy_scores(history) -> np.ndarray:
    """Scores of the 8 toy items for a history of item indices (question 3's model).

    A bag-of-items linear model: item j's score is ``sum(TOY_WEIGHTS[i, j] for i in
    history)``. Returns a new (8,) array each call.
    """
    return _bag_of_items_scores(history, TOY_WEIGHTS)


def _rank(scores: np.ndarray, target: int, exclude) -> int:
    """1 + the number of items outside ``exclude`` that score strictly above the target."""
    above = scores > scores[target]
    above[np.asarray(exclude, dtype=np.int64)] = False
    return int(above.sum()) + 1


def _q3_reference(score, history, target: int) -> tuple[int, np.ndarray]:
    history = np.asarray(history)
    rank = _rank(score(history), target, history)
    changes = []
    for i in range(len(history)):
        rest = np.delete(history, i)
        changes.append(_rank(score(rest), target, rest) - rank)
    return rank, np.array(changes)


def _q3_mistakes(score, history, target: int) -> dict[str, tuple[int, np.ndarray]]:
    history = np.asarray(history)
    rank, changes = _q3_reference(score, history, target)
    full = score(history)

    def rank_from_below(s, exclude):
        below = s < s[target]
        below[np.asarray(exclude, dtype=np.int64)] = False
        return int(below.sum()) + 1

    none = _rank(full, target, [])
    no_exclusion = np.array([_rank(score(np.delete(history, i)), target, []) - none
                             for i in range(len(history))])
    full_history = np.array([_rank(score(np.delete(history, i)), target, history) - rank
                             for i in range(len(history))])
    bottom = rank_from_below(full, history)
    from_below = np.array([rank_from_below(score(np.delete(history, i)),
                                           np.delete(history, i)) - bottom
                           for i in range(len(history))])
    drops = np.array([full[target] - score(np.delete(history, i))[target]
                      for i in range(len(history))])
    return {
        "zero_based": (rank - 1, changes),
        "count_target": (rank + 1, changes),
        "from_below": (bottom, from_below),
        "no_exclusion": (none, no_exclusion),
        "full_history": (rank, full_history),
        "flipped": (rank, -changes),
        "ranks_without": (rank, changes + rank),
        "score_drops": (rank, drops),
        "not_removed": (rank, np.zeros_like(changes)),
    }


_Q3_RANK_MESSAGES = {
    "zero_based": "ranks start at 1: the top item has rank 1, so rank = 1 + the number of "
                  "items that score higher than the target",
    "count_target": "you counted the target itself (>= instead of >): rank = 1 + the number "
                    "of OTHER items that score strictly higher than the target",
    "from_below": "you ranked from the bottom; rank 1 is the HIGHEST score: count the items "
                  "that score above the target",
    "no_exclusion": "you ranked the target among all items, the history included; the "
                    "history's items are already seen and never recommended, so leave them "
                    "out of the count",
}

_Q3_CHANGE_MESSAGES = {
    "from_below": "you ranked from the bottom; rank 1 is the HIGHEST score: count the items "
                  "that score above the target",
    "no_exclusion": "you ranked among all items, the remaining history included; leave the "
                    "remaining history's items out of the count",
    "full_history": "when you leave item h out of the history, h is no longer seen: it "
                    "competes with the target again. Exclude only the REMAINING history "
                    "from the ranking, not the full one",
    "flipped": "your signs are flipped: the change is rank_without - rank, positive when "
               "the target falls (its rank number grows) once the item is gone",
    "ranks_without": "you returned the ranks without each item; return the change, "
                     "rank_without - rank (0 when removing the item changes nothing)",
    "score_drops": "you returned the drops of the target's score; the question asks for the "
                   "change of its RANK, which also depends on how the other items' scores "
                   "move",
    "not_removed": "all your changes are 0: score the history WITHOUT item i "
                   "(np.delete(history, i)) for each position i",
}


def _q3_random_case(seed: int, n_items: int, length: int, target_rank: int) -> tuple:
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(n_items, n_items))
    np.fill_diagonal(weights, 0.0)
    score = functools.partial(_bag_of_items_scores, weights=weights)
    history = rng.choice(n_items, size=length, replace=False)
    order = np.argsort(-score(history), kind="stable")
    order = order[~np.isin(order, history)]
    return score, history, int(order[target_rank - 1])


#: (score function, history, target): the toy model first, then random bag-of-items models
_Q3_CASES = [
    (toy_scores, np.array([3, 6, 2]), 1),
    (toy_scores, np.array([0, 3, 6]), 1),
    (toy_scores, np.array([5, 0, 7, 4]), 2),
    _q3_random_case(143, 15, 5, 3),
    _q3_random_case(144, 30, 8, 6),
]


def _check_leave_one_out(func) -> None:
    for number, (score, history, target) in enumerate(_Q3_CASES, start=1):
        given = history.copy()
        got = call_answer(func, score, given, target)
        toy = score is toy_scores
        where = (f"For the toy model with history={history.tolist()} and target={target}"
                 if toy else
                 f"For a random bag-of-items model (case {number}) with "
                 f"history={history.tolist()} and target={target}")
        if not np.array_equal(given, history):
            raise Incorrect(f"{where} your function changed the caller's history: use "
                            "np.delete(history, i), which returns a new array")
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise Incorrect(f"{where} return a tuple (rank, changes): the target's rank "
                            f"with the whole history and the array of rank changes, got "
                            f"{type(got).__name__}")
        rank, changes = _unwrap(got[0]), _array(got[1], "the changes")
        if not _is_number(rank):
            raise Incorrect(f"{where} the rank should be a number, got {type(rank).__name__}")
        want_rank, want_changes = _q3_reference(score, history, target)
        mistakes = _q3_mistakes(score, history, target)
        if not _close(rank, want_rank):
            ranks = {k: v[0] for k, v in mistakes.items() if k in _Q3_RANK_MESSAGES}
            name = _first_match(rank, ranks, _close, want_rank)
            why = (_Q3_RANK_MESSAGES[name] if name else
                   "rank = 1 + the number of items, outside the history, whose score is "
                   "strictly higher than the target's")
            raise Incorrect(f"{where} your rank is {rank:g}, expected {want_rank}: {why}")
        if changes.shape != want_changes.shape:
            raise Incorrect(f"{where} return one change per history position "
                            f"({len(history)}), got shape {changes.shape}")
        if _same(changes, want_changes):
            continue
        name = _first_match(changes, {k: v[1] for k, v in mistakes.items()
                                      if k in _Q3_CHANGE_MESSAGES}, _same, want_changes)
        why = (_Q3_CHANGE_MESSAGES[name] if name else
               "for each position i, rank the target after scoring np.delete(history, i), "
               "with that remaining history excluded, and subtract the rank with the whole "
               "history")
        raise Incorrect(f"{where} your changes are {_show(changes)}, expected "
                        f"{want_changes.tolist()}: {why}")


# ----------------------------------------------------------------------------------- q4
def _q4_exposure(recommendations: dict, fake_users, item, k: int) -> float:
    real = [u for u in recommendations if u not in fake_users]
    return sum(item in list(recommendations[u])[:k] for u in real) / len(real)


def _q4_exposure_mistakes(recommendations: dict, fake_users, item,
                          k: int) -> dict[str, float]:
    real = [u for u in recommendations if u not in fake_users]
    fake = [u for u in recommendations if u in fake_users]

    def hits(users, cut):
        return sum(item in list(recommendations[u])[:cut] for u in users)

    everyone = list(recommendations)
    share = hits(real, k) / len(real)
    out = {}
    if len(everyone) != len(fake_users) + len(real) and len(everyone) > len(fake_users):
        out["subtract_sizes"] = hits(real, k) / (len(everyone) - len(fake_users))
    out |= {
        "with_fakes": hits(everyone, k) / len(everyone),
        "over_all_users": hits(real, k) / len(everyone),
        "fake_only": hits(fake, k) / len(fake) if fake else None,
        "whole_list": hits(real, None) / len(real),
        "k_minus_1": hits(real, k - 1) / len(real),
        "k_plus_1": hits(real, k + 1) / len(real),
        "count": float(hits(real, k)),
        "percent": 100 * share,
    }
    return out


_Q4_EXPOSURE_MESSAGES = {
    "with_fakes": "you counted the fake users as well: the attacker's own profiles see the "
                  "target, which says nothing about the harm. Count the REAL users only, in "
                  "the numerator and the denominator",
    "over_all_users": "you divided the real users' hits by ALL the users; divide by the "
                      "number of real users",
    "fake_only": "you measured the fake users; the exposure that matters is among the REAL "
                 "users (the users not in fake_users)",
    "whole_list": "you searched the whole list; exposure@k looks at the first k items only, "
                  "ranked[:k]",
    "k_minus_1": "you looked at the first k - 1 items; the top k are ranked[:k]",
    "k_plus_1": "you looked at the first k + 1 items; the top k are ranked[:k]",
    "count": "you returned the number of real users who see the item; return the share, "
             "divided by the number of real users",
    "percent": "return a share between 0 and 1, not a percentage",
    "subtract_sizes": "some ids in fake_users have no recommendations, so len(recommendations) "
                      "- len(fake_users) is not the number of real users: count the users "
                      "of recommendations that are not in fake_users",
}

_Q4_RECS = {1: [5, 3, 9, 2], 2: [3, 5, 1, 9], 3: [9, 1, 5, 2], 4: [2, 9, 3, 5],
            101: [5, 9, 1, 3], 102: [5, 3, 2, 1], 103: [1, 9, 2, 3]}


def _q4_random_recs(seed: int, n_real: int, n_fake: int, n_items: int, k: int) -> tuple:
    rng = np.random.default_rng(seed)
    recs = {int(u): [int(i) for i in rng.choice(n_items, size=k + 3, replace=False)]
            for u in range(n_real)}
    fake = set(range(10_000, 10_000 + n_fake))
    for u in fake:  # the fake users mostly see the target (item 0) at the top
        recs[u] = [0] + [int(i) for i in rng.choice(np.arange(1, n_items), size=k + 2,
                                                    replace=False)]
    return recs, fake, 0, k


#: (recommendations, fake users, item, k)
_Q4_EXPOSURE_CASES = [
    (_Q4_RECS, {101, 102, 103}, 5, 2),
    (_Q4_RECS, {101, 102, 103}, 9, 1),
    (_Q4_RECS, {101, 102, 103, 104, 105}, 5, 3),
    _q4_random_recs(145, 200, 12, 40, 10),
]


def _q4_ratings() -> pd.DataFrame:
    """A small ratings table whose item 0 is rated by everyone (so popularity shows)."""
    rng = np.random.default_rng(146)
    rows = []
    for user in range(1, 31):
        items = [0, *rng.choice(np.arange(1, 12), size=2, replace=False).tolist()]
        rows += [(user, item, float(rng.integers(1, 6)), 1_000_000 + 60 * len(rows))
                 for item in items]
    rows.append((31, 12, 3.0, 1_000_000 + 60 * len(rows)))  # the target, rated once
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


_Q4_RATINGS = _q4_ratings()
#: (target item, n_profiles, filler_size): the uniformity case is the first
_Q4_PROFILE_CASES = [(12, 300, 4), (5, 7, 3), (12, 3, 0)]


def _check_exposure(func) -> None:
    for number, (recs, fake, item, k) in enumerate(_Q4_EXPOSURE_CASES, start=1):
        given = {u: list(v) for u, v in recs.items()}
        got = call_answer(func, given, set(fake), item, k)
        where = (f"For the recommendations {recs}, fake_users={sorted(fake)}, item={item} and "
                 f"k={k}" if len(recs) < 10 else
                 f"For {len(recs) - len(fake)} real and {len(fake)} fake users (case "
                 f"{number}), item={item} and k={k}")
        got = _unwrap(got)
        if not _is_number(got):
            raise Incorrect(f"{where} exposure_among_real should return one number, got "
                            f"{type(got).__name__}")
        want = _q4_exposure(recs, fake, item, k)
        if _close(got, want):
            continue
        name = _first_match(got, _q4_exposure_mistakes(recs, fake, item, k), _close, want)
        why = (_Q4_EXPOSURE_MESSAGES[name] if name else
               "the share of the real users (users of recommendations not in fake_users) "
               "whose first k items contain the item")
        raise Incorrect(f"{where} you returned {got:.6g}, expected {want:.6g}: {why}")


def _profile_rows(table: pd.DataFrame) -> dict:
    """user -> item ids in time order (a stable sort keeps equal timestamps in row order)."""
    ordered = table.sort_values(["user_id", "timestamp"], kind="stable")
    return {u: g["item_id"].tolist() for u, g in ordered.groupby("user_id", sort=True)}


def _check_fake_profiles(func) -> None:
    ratings = _Q4_RATINGS
    columns = list(ratings.columns)
    catalogue = set(ratings["item_id"].unique().tolist())
    first_new = int(ratings["user_id"].max()) + 1
    top, last_time = float(ratings["rating"].max()), int(ratings["timestamp"].max())
    for target, n_profiles, filler_size in _Q4_PROFILE_CASES:
        given = ratings.copy()
        got = call_answer(func, given, target, n_profiles, filler_size, np.random.default_rng(3))
        where = (f"With target_item={target}, n_profiles={n_profiles} and "
                 f"filler_size={filler_size}")
        if not given.equals(ratings):
            raise Incorrect(f"{where} your function changed the caller's ratings; build a new "
                            "DataFrame of the fake rows only")
        if not isinstance(got, pd.DataFrame):
            raise Incorrect(f"{where} fake_profiles should return a pandas DataFrame, got "
                            f"{type(got).__name__}")
        if sorted(got.columns) != sorted(columns):
            raise Incorrect(f"{where} your DataFrame has the columns {list(got.columns)}; "
                            f"give it the columns of ratings, {columns}, so that "
                            "pd.concat([ratings, fakes]) lines them up")
        rows = n_profiles * (filler_size + 1)
        if len(got) == len(ratings) + rows:
            raise Incorrect(f"{where} you returned the ratings together with the fake rows; "
                            "return the fake rows only (the caller concatenates)")
        if len(got) != rows:
            raise Incorrect(f"{where} you returned {len(got)} rows, expected n_profiles * "
                            f"(filler_size + 1) = {rows}: each profile has filler_size "
                            "fillers and the target")
        users = sorted(set(got["user_id"].tolist()))
        want_users = list(range(first_new, first_new + n_profiles))
        if users != want_users:
            clash = set(users) & set(ratings["user_id"].tolist())
            why = (f"ids {sorted(clash)[:5]} already belong to real users" if clash else
                   f"expected {want_users[0]}..{want_users[-1]}")
            raise Incorrect(f"{where} your fake user ids are {users[:5]}...: {why}. Number "
                            "them from ratings['user_id'].max() + 1 on, one id per profile")
        if not np.allclose(got["rating"].to_numpy(dtype=float), top):
            raise Incorrect(f"{where} every fake row should have the highest rating of "
                            f"ratings, {top:g}")
        if (got["timestamp"].to_numpy() <= last_time).any():
            raise Incorrect(f"{where} some fake rows are not later than every row of ratings "
                            f"(the last timestamp is {last_time}); the attack comes after the "
                            "data, as new profiles do")
        profiles = _profile_rows(got)
        for user, items in profiles.items():
            if len(items) != filler_size + 1:
                raise Incorrect(f"{where} user {user} has {len(items)} rows, expected "
                                f"{filler_size + 1}")
            times = got.loc[got["user_id"] == user, "timestamp"].to_numpy()
            if len(set(times.tolist())) != len(times):
                raise Incorrect(f"{where} user {user}'s rows share timestamps: make them "
                                "increase within a profile, so that the target is "
                                "unambiguously the last")
            if items[-1] != target:
                raise Incorrect(f"{where} user {user}'s last item (by timestamp) is "
                                f"{items[-1]}, not the target {target}: fillers first, then "
                                "the target, as a sequence model should read it")
            fillers = items[:-1]
            if target in fillers:
                raise Incorrect(f"{where} user {user}'s fillers include the target; draw "
                                "the fillers from the items other than the target")
            if len(set(fillers)) != len(fillers):
                raise Incorrect(f"{where} user {user}'s fillers repeat an item ({fillers}): "
                                "draw them without replacement (replace=False) from the "
                                "DISTINCT items, ratings['item_id'].unique()")
            if not set(fillers) <= catalogue:
                raise Incorrect(f"{where} user {user}'s fillers {fillers} include items "
                                "that are not in ratings; draw them from the catalogue, "
                                "ratings['item_id'].unique()")
        if n_profiles >= 100 and filler_size:
            others = sorted(catalogue - {target})
            counts = pd.Series([i for items in profiles.values() for i in items[:-1]]
                               ).value_counts().reindex(others, fill_value=0)
            p = filler_size / len(others)
            expected, sd = n_profiles * p, math.sqrt(n_profiles * p * (1 - p))
            worst = (counts - expected).abs().idxmax()
            if abs(counts[worst] - expected) > 6 * sd:
                popular = ratings["item_id"].value_counts().idxmax()
                hint = (f" Item {popular} is in most rows of ratings: drawing from the "
                        "column ratings['item_id'] favours popular items; draw uniformly "
                        "from the distinct items instead" if worst == popular else "")
                raise Incorrect(f"{where} item {worst} is a filler {counts[worst]} times, "
                                f"expected about {expected:.0f} for uniform draws.{hint}")
    target, n_profiles, filler_size = _Q4_PROFILE_CASES[1]
    draws = [call_answer(func, ratings.copy(), target, n_profiles, filler_size,
                     np.random.default_rng(seed)) for seed in (11, 11, 12)]
    fillers = [_profile_rows(d) if isinstance(d, pd.DataFrame) else None for d in draws]
    where = f"With target_item={target}, n_profiles={n_profiles} and filler_size={filler_size}"
    if fillers[0] != fillers[1]:
        raise Incorrect(f"{where} two calls with generators seeded alike gave different "
                        "fillers: draw them with the rng argument (rng.choice(...)), not "
                        "np.random or a generator of your own")
    if fillers[0] == fillers[2]:
        raise Incorrect(f"{where} generators with different seeds gave the same fillers: "
                        "draw them at random with the rng argument")


def _check_shilling(answer) -> None:
    exposure, profiles = _pair(answer, "q4", ("exposure_among_real", "fake_profiles"))
    _check_exposure(exposure)
    _check_fake_profiles(profiles)


# ----------------------------------------------------------------------------------- q5
def ease_weights(interactions: np.ndarray, l2: float) -> np.ndarray:
    """EASE's item-item weights in closed form (Steck, 2019): ``B = I - P / diag(P)``.

    ``P = (X^T X + l2 I)^-1``; B's diagonal is zero, so an item never recommends itself.

    Args:
        interactions: (users, items) 0/1 matrix X.
        l2: the L2 penalty (> 0).

    Returns:
        (items, items) array B; a user's scores are ``x @ B``.
    """
    x = np.asarray(interactions, dtype=float)
    gram = x.T @ x + l2 * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _q5_weights(seed: int, users: int, items: int, l2: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    popularity = rng.uniform(0.05, 0.5, size=items)
    return ease_weights((rng.random((users, items)) < popularity).astype(float), l2)


def _q5_top_k(scores, seen, k: int) -> np.ndarray:
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return order[~np.isin(order, np.asarray(seen, dtype=np.int64))][:k]


_Q5_SMALL_B = np.array([[0.0, 0.4, -0.1, 0.2],
                        [0.3, 0.0, 0.5, -0.2],
                        [-0.3, 0.6, 0.0, 0.1],
                        [0.2, 0.1, 0.7, 0.0]])
_Q5_B = _q5_weights(147, 80, 12, 5.0)
#: (B, history before, items added one by one)
_Q5_SESSIONS = [(_Q5_SMALL_B, [0], [2]), (_Q5_B, [3], [7, 1, 10]), (_Q5_B, [], [4, 0])]


def _q5_update_mistakes(scores: np.ndarray, b: np.ndarray, new: int) -> dict[str, np.ndarray]:
    excluded = scores + b[new]
    excluded[new] = -np.inf
    return {"column": scores + b[:, new], "replaced": b[new].copy(),
            "subtracted": scores - b[new], "excluded": excluded,
            "doubled": scores + 2 * b[new], "unchanged": scores.copy()}


_Q5_UPDATE_MESSAGES = {
    "column": "you added COLUMN new_item of B; the scores are x @ B, so score_j = "
              "sum_i x_i B[i, j], and the new x_i = 1 adds ROW new_item: B[new_item] "
              "(EASE's B is not symmetric)",
    "replaced": "you replaced the scores by B[new_item]; the user's earlier items still "
                "count: add the row to the scores",
    "subtracted": "you subtracted the row; adding an item to the history adds B[new_item] "
                  "to the scores",
    "excluded": "update_scores returns the raw scores; leaving out the seen items is "
                "top_k_fresh's job",
    "doubled": "you added the row twice: x_new_item goes from 0 to 1, so add B[new_item] "
               "once",
    "unchanged": "your scores did not change: add B[new_item]",
}


def _top_k_mistakes(scores, seen, k: int) -> dict[str, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    seen = np.asarray(seen, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    fresh = order[~np.isin(order, seen)]
    zeroed = s.copy()
    zeroed[seen] = 0.0
    minus_inf = s.copy()
    minus_inf[seen] = -np.inf
    reversed_ties = np.argsort(s, kind="stable")[::-1]
    return {
        "not_excluded": order[:k],
        "ascending": np.argsort(s, kind="stable")[~np.isin(np.argsort(s, kind="stable"),
                                                           seen)][:k],
        "k_minus_1": fresh[: k - 1],
        "k_plus_1": fresh[: k + 1],
        "padded_with_seen": np.argsort(-minus_inf, kind="stable")[:k],
        "zeroed": np.argsort(-zeroed, kind="stable")[:k],
        "reversed_ties": reversed_ties[~np.isin(reversed_ties, seen)][:k],
        "scores": np.sort(s[fresh])[::-1][:k],
    }


_TOP_K_MESSAGES = {
    "not_excluded": "you did not leave out the seen items; a user has already seen them",
    "ascending": "you returned the LOWEST scores; best first: np.argsort(-scores)",
    "k_minus_1": "you returned k - 1 items; return k",
    "k_plus_1": "you returned k + 1 items; return k",
    "zeroed": "setting the seen items' scores to 0 does not remove them: EASE's scores can "
              "be negative, so a seen item at 0 can beat unseen ones. Use -np.inf, or drop "
              "the seen items from the ranking",
    "padded_with_seen": "fewer than k items are unseen here, and you filled the list up with "
                        "seen ones (their -inf scores still sort last); return only the "
                        "unseen items, even if that is fewer than k",
    "reversed_ties": "equal scores must keep the lower index first: np.argsort(-scores, "
                     "kind='stable'), not np.argsort(scores)[::-1], which reverses ties",
    "scores": "you returned the scores; return the item indices",
}

#: (scores, seen, k)
_Q5_TOP_K_CASES = [
    (np.array([0.5, 2.0, 1.0, 2.0, -1.0, 3.0]), [5], 3),
    (np.array([-0.4, -0.1, -0.9, -0.3, -0.2]), [0, 2], 2),
    (np.array([0.3, 0.1, 0.9, 0.2]), [0, 2, 3], 3),
]


def _check_update_scores(func) -> None:
    for b, before, added in _Q5_SESSIONS:
        history = list(before)
        x = np.zeros(len(b))
        x[history] = 1
        scores = x @ b
        for new in added:
            given = scores.copy()
            given_b = b.copy()
            got = call_answer(func, given, given_b, new)
            where = (f"For a user who has seen {history} and adds item {new} "
                     f"({len(b)} items)")
            if not np.array_equal(given, scores) or not np.array_equal(given_b, b):
                raise Incorrect(f"{where} your function changed the caller's scores (or B): "
                                "scores += ... works in place; return a new array, "
                                "scores + B[new_item]")
            got = _array(got, "update_scores")
            history.append(new)
            x[new] = 1
            want = x @ b  # the full recomputation
            if got.shape != want.shape:
                raise Incorrect(f"{where} you returned shape {got.shape}, expected "
                                f"({len(b)},), one score per item")
            if _same(got, want):
                scores = want
                continue
            name = _first_match(got, _q5_update_mistakes(scores, b, new),
                                lambda a, c: _same(a, c), want)
            why = (_Q5_UPDATE_MESSAGES[name] if name else
                   "the new scores are the old ones plus row new_item of B")
            raise Incorrect(f"{where} your scores differ from the full recomputation x @ B: "
                            f"{why}")


def _check_top_k_fresh(func) -> None:
    cases = list(_Q5_TOP_K_CASES)
    scores = np.zeros(len(_Q5_B))
    scores[[3, 7]] = 1
    cases.append((scores @ _Q5_B, [3, 7], 5))
    for scores, seen, k in cases:
        given = scores.copy()
        got = call_answer(func, given, list(seen), k)
        where = (f"For scores={_show(scores, 3)}, seen={seen} and k={k}" if len(scores) <= 8
                 else f"For EASE scores of {len(scores)} items, seen={seen} and k={k}")
        if not np.array_equal(given, scores):
            raise Incorrect(f"{where} your function changed the caller's scores (scores[seen] "
                            "= ... works in place): work on a copy, scores.copy()")
        arr = _array(got, "top_k_fresh")
        want = _q5_top_k(scores, seen, k)
        if arr.shape == want.shape and np.array_equal(arr, want):
            if np.asarray(got).dtype.kind not in "iu":
                raise Incorrect(f"{where} return the indices as integers (argsort's own), "
                                f"got dtype {np.asarray(got).dtype}")
            continue
        same = lambda a, c: np.asarray(a).shape == np.asarray(c).shape and np.allclose(  # noqa: E731
            np.asarray(a, dtype=float), np.asarray(c, dtype=float))
        name = _first_match(arr, _top_k_mistakes(scores, seen, k), same, want)
        why = (_TOP_K_MESSAGES[name] if name else
               "the indices of the k highest scores among the unseen items, best first "
               "(ties: lower index first)")
        raise Incorrect(f"{where} you returned {_show(arr)}, expected {want.tolist()}: {why}")


def _check_real_time(answer) -> None:
    update, top_k = _pair(answer, "q5", ("update_scores", "top_k_fresh"))
    _check_update_scores(update)
    _check_top_k_fresh(top_k)


# ----------------------------------------------------------------------------------- q6
def _q6_reference(client_weights, counts) -> list[np.ndarray]:
    shares = np.asarray(counts, dtype=float) / np.sum(counts)
    return [sum(s * np.asarray(w[layer], dtype=float) for s, w in
                zip(shares, client_weights, strict=True))
            for layer in range(len(client_weights[0]))]


def _q6_mistakes(client_weights, counts) -> dict[str, list[np.ndarray]]:
    counts = np.asarray(counts, dtype=float)
    layers = range(len(client_weights[0]))

    def combine(factors):
        return [sum(f * np.asarray(w[layer], dtype=float) for f, w in
                    zip(factors, client_weights, strict=True)) for layer in layers]

    k = len(client_weights)
    inverse = (1 / counts) / (1 / counts).sum()
    return {
        "unweighted": combine(np.full(k, 1 / k)),
        "not_normalised": combine(counts),
        "over_clients": combine(counts / k),
        "inverse": combine(inverse),
        "first_client": [np.asarray(w, dtype=float) for w in client_weights[0]],
    }


_Q6_MESSAGES = {
    "unweighted": "you took the plain mean over the clients; federated averaging weights "
                  "each client by its number of examples, n_c / sum(n), so that a client "
                  "with 10 times more data counts 10 times more",
    "not_normalised": "you weighted by the counts but did not divide by their total: the "
                      "weights n_c / sum(n) must add up to 1",
    "over_clients": "you divided by the number of clients; divide by the total number of "
                    "examples, sum(n), so that the weights add up to 1",
    "inverse": "you gave the SMALLER clients more weight; weight each client by n_c / sum(n)",
    "first_client": "you returned the first client's weights; average all the clients",
}


def _q6_random_case(seed: int, clients: int, shapes: list[tuple[int, ...]]) -> tuple:
    rng = np.random.default_rng(seed)
    weights = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(clients)]
    return weights, rng.integers(5, 500, size=clients).tolist()


_Q6_CASES = [
    ([[np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.0, 1.0])],
      [np.array([[3.0, 2.0], [1.0, 0.0]]), np.array([2.0, -1.0])],
      [np.array([[0.0, 0.0], [2.0, 2.0]]), np.array([1.0, 1.0])]], [10, 30, 60]),
    ([[np.array([5.0, -1.0])]], [7]),
    _q6_random_case(148, 5, [(4, 3), (3,), (3, 1)]),
]


def _check_federated_average(func) -> None:
    for number, (client_weights, counts) in enumerate(_Q6_CASES, start=1):
        given = [[w.copy() for w in client] for client in client_weights]
        got = call_answer(func, given, list(counts))
        shapes = [w.shape for w in client_weights[0]]
        where = (f"For {len(client_weights)} client(s) with counts {list(counts)} and "
                 f"weights of shapes {shapes} (case {number})")
        if any(not np.array_equal(a, b) for ga, ca in zip(given, client_weights, strict=True)
               for a, b in zip(ga, ca, strict=True)):
            raise Incorrect(f"{where} your function changed a client's weights (an in-place "
                            "+= or *= on an array you did not create): start each layer "
                            "from np.zeros_like(...) or a product, which makes a new array")
        if not isinstance(got, list | tuple):
            raise Incorrect(f"{where} return a list with one array per layer (like "
                            f"model.get_weights()), got {type(got).__name__}")
        if len(got) != len(shapes):
            raise Incorrect(f"{where} you returned {len(got)} array(s), expected one per "
                            f"layer ({len(shapes)})")
        want = _q6_reference(client_weights, counts)
        got = [_array(g, f"layer {i}") for i, g in enumerate(got)]
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if g.shape != w.shape:
                raise Incorrect(f"{where} your layer {i} has shape {g.shape}, expected "
                                f"{w.shape}: average each layer over the clients, "
                                "element by element")
        if all(_same(g, w, rtol=1e-5) for g, w in zip(got, want, strict=True)):
            continue
        same = lambda a, b: all(_same(x, y, rtol=1e-5)  # noqa: E731
                                for x, y in zip(a, b, strict=True))
        name = _first_match(got, _q6_mistakes(client_weights, counts), same, want)
        why = (_Q6_MESSAGES[name] if name else
               "each layer is sum_c (n_c / sum(n)) * client c's layer")
        raise Incorrect(f"{where} your average is wrong: {why}")


EXERCISES = ExerciseSet("ex14", [
    Question("q1", "residual quantisation: codes and reconstruction",
             _check_residual_quantise,
             "Start from residual = vectors.copy() and a reconstruction of zeros. For each "
             "codebook: squared distances ((residual[:, None, :] - codebook[None]) ** "
             "2).sum(-1), code = argmin over the centroids, then add codebook[code] to the "
             "reconstruction and subtract it from the residual."),
    Question("q2", "DP-SGD: clip each example, add noise, average", _check_privatize,
             "norms = np.linalg.norm(g, axis=1); clipped = g * np.minimum(1, clip / "
             "norms)[:, None]; total = clipped.sum(axis=0) + rng.normal(0, noise_multiplier "
             "* clip, size=g.shape[1]); return total / len(g)."),
    Question("q3", "leave-one-out attribution by rank", _check_leave_one_out,
             "Write rank(scores, exclude): 1 + the number of items not in exclude whose score "
             "is > scores[target]. rank0 = rank(score(history), history); for each i, rest "
             "= np.delete(history, i) and the change is rank(score(rest), rest) - rank0."),
    Question("q4", "a shilling attack: exposure among real users, fake profiles",
             _check_shilling,
             "Exposure: real = [u for u in recommendations if u not in fake_users]; the "
             "share of them with item in recommendations[u][:k]. Profiles: fillers = "
             "rng.choice(others, size=filler_size, replace=False) with others the distinct "
             "items except the target; user ids from ratings['user_id'].max() + 1; "
             "timestamps after ratings['timestamp'].max(), increasing, the target last."),
    Question("q5", "real-time EASE: update the scores, recommend fresh items",
             _check_real_time,
             "update_scores: return scores + B[new_item] (a row, since scores = x @ B). "
             "top_k_fresh: order = np.argsort(-scores, kind='stable'), drop the seen items "
             "with order[~np.isin(order, seen)], keep the first k."),
    Question("q6", "federated averaging", _check_federated_average,
             "shares = np.asarray(counts) / np.sum(counts); for each layer index, the "
             "average is sum(share * weights[layer] for share, weights in zip(shares, "
             "client_weights))."),
])
q1, q2, q3, q4, q5, q6 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
