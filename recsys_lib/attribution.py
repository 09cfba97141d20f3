"""Why did the Transformer recommend this item? Three attributions of a SASRec score, and a
test of which one to believe.

For one history (item ids, oldest first) and one recommended *target* item, each function
gives every history item a number saying how much it drove the target's score (the logit at
the last position, the one that predicts the next item):

* **attention** (:func:`attention_attribution`): the weights the last position puts on each
  history position in one block, averaged over heads; :func:`attention_rollout` (Abnar &
  Zuidema, 2020) chains the blocks, counting the residual path as half of each step. Cheap,
  but attention says where the model *looks*, not what the score *depends on*, and it is
  the same for every target.
* **gradient x input** (:func:`gradient_x_input`): the target logit's gradient with respect
  to each history item's embedding vector, dotted with that vector (the first-order change
  of the logit if the item's vector were scaled to zero; position embeddings are not
  counted). One backward pass, target-specific.
* **leave-one-out** (:func:`leave_one_out`): the counterfactual itself. Delete one history
  item, score again: the drop of the target's score and the change of its rank. Exact,
  but one forward pass per history item (all of them in one batch here).

Whether an attribution is *faithful* is measured with **deletion curves**
(:func:`deletion_curve`): delete the history items most-important-first and watch the
target's score; a faithful ranking makes it fall fast, so the normalised area under the
curve (:func:`area_under_deletion`) is small. Random orders (:func:`random_deletion_curve`)
are the baseline. :func:`agreement` compares two attributions (top-n overlap, Spearman).

Conventions: items are given and returned as item ids; inside, item indices + 1 with 0 as
padding, left-padded to ``rec.max_len`` exactly as ``score_histories`` does. The model reads
only the last ``rec.max_len`` items of a history, so a longer history is cropped to those
(with a ``UserWarning``) and every attribution, row and curve covers the items the model
reads (:func:`read_window` lists them); a deleted item is never replaced by an older one.
Ranks are over the whole catalogue with the remaining history items excluded (1 = top), as
in the course's evaluation; the target must therefore not be in the history.

Explained in notebook 14.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from keras import ops
from scipy import stats

from recsys_lib.checks import ArgumentError, check_int
from recsys_lib.models.sasrec import SASRec, SequenceRecommender, left_pad

# ---------------------------------------------------------------------------- input checks


def _check_fitted(rec: SequenceRecommender) -> None:
    """Raise unless ``rec`` is a fitted (or loaded) sequence recommender."""
    if not isinstance(rec, SequenceRecommender):
        raise ArgumentError(f"rec must be a fitted SASRecRecommender, got {type(rec).__name__}")
    items = getattr(rec, "items_", None)
    if getattr(rec, "model_", None) is None or items is None or items.ids_ is None:
        raise ValueError(f"the {rec.label} model is not fitted: call rec.fit(train) or load "
                         "a saved one with SASRecRecommender.load(path) first")


def _check_sasrec(rec: SequenceRecommender) -> SASRec:
    """The fitted SASRec network of ``rec``; attention and gradients need its layers."""
    _check_fitted(rec)
    if not isinstance(rec.model_, SASRec):
        raise ArgumentError(f"attention and gradient attributions need a SASRec network, got "
                            f"{type(rec.model_).__name__}; leave_one_out and the deletion "
                            "curves work for any sequence recommender")
    return rec.model_


def _window(rec: SequenceRecommender, history, stacklevel: int = 3) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """The item ids the model reads and their indices + 1 (cropped to ``rec.max_len``)."""
    _check_fitted(rec)
    if isinstance(history, str | bytes) or np.ndim(history) != 1:
        raise ArgumentError("history must be a 1-D list or array of item ids, oldest first, "
                            f"got {history!r:.80}")
    ids = np.asarray(history)
    if ids.size == 0:
        raise ValueError("the history is empty: there is nothing to attribute the score to; "
                         "pass at least one item id")
    known = np.isin(ids, rec.items_.ids_)
    if not known.all():
        unknown = list(dict.fromkeys(ids[~known].tolist()))
        raise ValueError(f"{len(unknown)} history item id(s) are not in the model's "
                         f"catalogue: {unknown[:10]}; the model has no embedding for them, "
                         "so drop them from the history")
    if len(ids) > rec.max_len:
        warnings.warn(f"the history has {len(ids)} items but the model reads only the last "
                      f"max_len={rec.max_len}; the attributions cover those "
                      f"{rec.max_len} items (read_window(rec, history) lists them)",
                      UserWarning, stacklevel=stacklevel)
        ids = ids[-rec.max_len:]
    return ids, rec.items_.transform(ids) + 1


def _target_column(rec: SequenceRecommender, target_item) -> int:
    """The score column (item index) of ``target_item``; raises for an unknown item."""
    if np.ndim(target_item) != 0:
        raise ArgumentError(f"target_item must be one item id, got {target_item!r:.80}")
    if not np.isin(target_item, rec.items_.ids_):
        raise ValueError(f"target item {target_item!r} is not in the model's catalogue; "
                         "explain an item the model can recommend")
    return int(rec.items_.transform([target_item])[0])


def _check_unseen(target: int, indices: np.ndarray, target_item) -> None:
    """Raise if the target is in the history: ranks exclude the history items."""
    if np.any(indices - 1 == target):
        raise ValueError(f"target item {target_item!r} is in the history; ranks exclude "
                         "history items (recommendations never repeat them), so explain an "
                         "item the user has not interacted with")


def read_window(rec: SequenceRecommender, history) -> np.ndarray:
    """The item ids of ``history`` the model reads: its last ``rec.max_len`` items.

    Args:
        rec: a fitted SASRecRecommender.
        history: item ids, oldest first.

    Returns:
        The ids, oldest first (the whole history when it is not longer than ``max_len``),
        aligned with every attribution of this module.

    Raises:
        ValueError: unfitted model, empty history, unknown item ids.

    Explained in notebook 14.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _window(rec, history)[0]


# ---------------------------------------------------------------------------- attention


def _attention_maps(model: SASRec, indices: np.ndarray) -> list[np.ndarray]:
    """Each block's head-averaged attention among the history positions, (n, n) each."""
    batch = left_pad([indices], model.max_len)
    _, maps = model.hidden(batch, training=False, return_attention=True)
    n = len(indices)
    # Keras returns (batch, heads, query T, key T); padding keys get weight 0, so keeping
    # the last n rows and columns loses nothing for the real queries.
    return [ops.convert_to_numpy(m)[0].astype(np.float64).mean(axis=0)[-n:, -n:]
            for m in maps]


def attention_attribution(rec: SequenceRecommender, history, block: int = -1) -> np.ndarray:
    """Attention weights of the last position (the one that scores the next item) over the
    history positions in one block, averaged over heads.

    The weights of a real query sum to 1 over the real positions (padding gets exactly 0),
    so the vector sums to 1. It does not depend on the target item.

    Args:
        rec: a fitted SASRecRecommender.
        history: item ids, oldest first (only the last ``rec.max_len`` are read).
        block: which Transformer block, Python-style (-1 = the last).

    Returns:
        (len(read_window(rec, history)),) float64 weights, oldest item first.

    Raises:
        ValueError: unfitted model, not a SASRec network, empty history, unknown item ids,
            a block that does not exist.

    Explained in notebook 14.
    """
    model = _check_sasrec(rec)
    block = check_int("block", block, minimum=-model.num_blocks, maximum=model.num_blocks - 1)
    _, indices = _window(rec, history)
    return _attention_maps(model, indices)[block][-1]


def _rollout(maps: list[np.ndarray]) -> np.ndarray:
    """The last row of the attention rollout of head-averaged (n, n) maps."""
    n = maps[0].shape[0]
    rollout = np.eye(n)
    for weights in maps:  # block 1 first: rollout = A_L ... A_2 A_1
        mixed = 0.5 * weights + 0.5 * np.eye(n)  # the residual path counts half
        mixed /= mixed.sum(axis=1, keepdims=True)
        rollout = mixed @ rollout
    return rollout[-1]


def attention_rollout(rec: SequenceRecommender, history) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) of the last position over the history.

    Each block's head-averaged attention ``A`` becomes ``0.5 A + 0.5 I`` (the residual
    connection), rows renormalised to sum to 1; the rollout is the product over the blocks,
    last block on the left, and its last row is returned. It sums to 1 and does not depend
    on the target item.

    Args:
        rec: a fitted SASRecRecommender.
        history: item ids, oldest first (only the last ``rec.max_len`` are read).

    Returns:
        (len(read_window(rec, history)),) float64 weights, oldest item first.

    Raises:
        ValueError: unfitted model, not a SASRec network, empty history, unknown item ids.

    Explained in notebook 14.
    """
    model = _check_sasrec(rec)
    _, indices = _window(rec, history)
    return _rollout(_attention_maps(model, indices))


# ---------------------------------------------------------------------------- gradients


def _gradient_x_input(model: SASRec, indices: np.ndarray, target: int) -> np.ndarray:
    """Gradient x item vector of the target's last-position logit, summed over dimensions."""
    import tensorflow as tf

    sequences = tf.constant(left_pad([indices], model.max_len))
    vectors = tf.convert_to_tensor(model.embed.item_embedding(sequences))  # (1, T, d)
    with tf.GradientTape() as tape:
        tape.watch(vectors)
        hidden = model.hidden(sequences, training=False, item_vectors=vectors)
        logit = model.logits(hidden[:, -1, :])[0, target + 1]
    gradient = tape.gradient(logit, vectors)
    product = ops.convert_to_numpy(gradient).astype(np.float64) * ops.convert_to_numpy(
        vectors).astype(np.float64)
    return product.sum(axis=-1)[0, -len(indices):]


def gradient_x_input(rec: SequenceRecommender, history, target_item) -> np.ndarray:
    """Gradient x input of the target's score for every history item.

    For the target's logit at the last position, the gradient with respect to each history
    position's item embedding vector (the row of the item table, before the sqrt(d) scale
    and the position embedding are added), dotted with that vector. To first order it is
    how much the logit changes if that item's vector is scaled to zero; positive = the item
    pushes the target up. Summed over positions it is the directional derivative of the
    logit along all item vectors: ``logit((1 + eps) e) - logit(e) ~ eps * sum``.

    Args:
        rec: a fitted SASRecRecommender.
        history: item ids, oldest first (only the last ``rec.max_len`` are read).
        target_item: the item id whose score is explained.

    Returns:
        (len(read_window(rec, history)),) float64 attributions, oldest item first.

    Raises:
        ValueError: unfitted model, not a SASRec network, empty history, unknown item ids,
            a target that is not in the catalogue.

    Explained in notebook 14.
    """
    model = _check_sasrec(rec)
    _, indices = _window(rec, history)
    return _gradient_x_input(model, indices, _target_column(rec, target_item))


# ---------------------------------------------------------------------------- counterfactuals


def _ranks(scores: np.ndarray, target: int, histories: list[np.ndarray]) -> np.ndarray:
    """Rank (1 = top) of column ``target`` in each row, the row's history items excluded.

    Ties go to the lower item index, as in ``recommend``'s stable sort.
    """
    value = scores[:, target][:, None]
    above = (scores > value) | ((scores == value) & (np.arange(scores.shape[1]) < target))
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    if len(rows):
        above[rows, np.concatenate(histories) - 1] = False
    return 1 + above.sum(axis=1)


def _score_variants(rec: SequenceRecommender, variants: list[np.ndarray],
                    target: int) -> tuple[np.ndarray, np.ndarray]:
    """The target's score and rank after each history variant, in one batched call."""
    scores = rec.score_histories(variants)
    return scores[:, target].astype(np.float64), _ranks(scores, target, variants)


def _leave_one_out(rec: SequenceRecommender, ids: np.ndarray, indices: np.ndarray,
                   target: int) -> pd.DataFrame:
    n = len(indices)
    variants = [indices] + [np.delete(indices, i) for i in range(n)]
    score, rank = _score_variants(rec, variants, target)
    table = pd.DataFrame({"position": np.arange(n), "item_id": ids,
                          "score_without": score[1:], "score_drop": score[0] - score[1:],
                          "rank_without": rank[1:], "rank_change": rank[1:] - rank[0]})
    table.attrs.update(score=float(score[0]), rank=int(rank[0]))
    return table


def leave_one_out(rec: SequenceRecommender, history, target_item) -> pd.DataFrame:
    """Delete each history item in turn and score the target again (one batched call).

    Args:
        rec: a fitted sequence recommender (SASRec, or any with ``score_histories``).
        history: item ids, oldest first (only the last ``rec.max_len`` are read; a deleted
            item is not replaced by an older one).
        target_item: the item id whose score is explained; not in the history.

    Returns:
        One row per history item, oldest first: ``position`` (0 = oldest), ``item_id``,
        ``score_without`` (the target's score without that item), ``score_drop`` (original
        score - score_without; positive = the item supports the target), ``rank_without``
        (1 = top, over the catalogue with the remaining history items excluded) and
        ``rank_change`` (rank_without - original rank; positive = the target falls without
        the item). ``attrs["score"]`` and ``attrs["rank"]`` hold the original score and rank.

    Raises:
        ValueError: unfitted model, empty history, unknown item ids, a target that is not
            in the catalogue or is in the history.

    Explained in notebook 14.
    """
    ids, indices = _window(rec, history)
    target = _target_column(rec, target_item)
    _check_unseen(target, indices, target_item)
    return _leave_one_out(rec, ids, indices, target)


# ---------------------------------------------------------------------------- deletion curves


def deletion_order(attribution) -> np.ndarray:
    """History positions from the most to the least important (largest attribution first;
    ties keep the older position first): the ``order`` for :func:`deletion_curve`.

    Raises:
        ValueError: not a non-empty 1-D array of finite numbers.

    Explained in notebook 14.
    """
    values = _vector("attribution", attribution)
    return np.argsort(-values, kind="stable")


def _check_order(order, n: int) -> np.ndarray:
    """``order`` as an int array; it must be a permutation of the n history positions."""
    if isinstance(order, str | bytes) or np.ndim(order) != 1:
        raise ArgumentError(f"order must be a 1-D array of history positions, got {order!r:.80}")
    positions = np.asarray(order)
    if positions.size and not np.issubdtype(positions.dtype, np.integer):
        raise ArgumentError(f"order must hold integer positions, got dtype {positions.dtype}; "
                            "deletion_order(attribution) turns an attribution into an order")
    if len(positions) != n or not np.array_equal(np.sort(positions), np.arange(n)):
        raise ValueError(f"order must be a permutation of the {n} history positions 0..{n - 1} "
                         f"(each once), got {positions.tolist()[:20]}; "
                         "deletion_order(attribution) turns an attribution into an order")
    return positions.astype(np.int64)


def _deletion_variants(indices: np.ndarray, orders: list[np.ndarray]) -> list[np.ndarray]:
    """The history after deleting 0, 1, ..., n items of each order (n + 1 per order)."""
    variants = []
    for order in orders:
        kept = np.ones(len(indices), dtype=bool)
        variants.append(indices)
        for position in order:
            kept[position] = False
            variants.append(indices[kept])
    return variants


def deletion_curve(rec: SequenceRecommender, history, target_item, order) -> pd.DataFrame:
    """The target's score and rank while the history items are deleted in ``order``.

    Args:
        rec: a fitted sequence recommender.
        history: item ids, oldest first (only the last ``rec.max_len`` are read).
        target_item: the item id whose score is explained; not in the history.
        order: the history positions (0 = oldest), most important first, each once; e.g.
            ``deletion_order(gradient_x_input(rec, history, target_item))``.

    Returns:
        Rows ``step`` 0..n: ``fraction_deleted`` (step / n), ``deleted_item`` (the item id
        deleted at this step; None at step 0), ``score`` and ``rank`` of the target after
        the deletions. Step 0 is the full history, step n the empty one (all padding).

    Raises:
        ValueError: what :func:`leave_one_out` raises, or an order that is not a
            permutation of the history positions.

    Explained in notebook 14.
    """
    ids, indices = _window(rec, history)
    target = _target_column(rec, target_item)
    _check_unseen(target, indices, target_item)
    order = _check_order(order, len(indices))
    score, rank = _score_variants(rec, _deletion_variants(indices, [order]), target)
    n = len(indices)
    return pd.DataFrame({"step": np.arange(n + 1), "fraction_deleted": np.arange(n + 1) / n,
                         "deleted_item": pd.Series([None] + ids[order].tolist(), dtype=object),
                         "score": score, "rank": rank})


def random_deletion_curve(rec: SequenceRecommender, history, target_item, repeats: int = 10,
                          seed: int = 0) -> pd.DataFrame:
    """The baseline deletion curve: the mean over ``repeats`` random deletion orders.

    Args:
        rec, history, target_item: as in :func:`deletion_curve`.
        repeats: number of random orders (all scored in one batched call).
        seed: seeds the orders (NumPy Generator).

    Returns:
        Rows ``step`` 0..n: ``fraction_deleted``, and the mean ``score`` and mean ``rank``
        of the target over the random orders.

    Raises:
        ValueError: what :func:`deletion_curve` raises; repeats < 1 or a negative seed.

    Explained in notebook 14.
    """
    repeats = check_int("repeats", repeats)
    seed = check_int("seed", seed, minimum=0)
    _, indices = _window(rec, history)
    target = _target_column(rec, target_item)
    _check_unseen(target, indices, target_item)
    n = len(indices)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n) for _ in range(repeats)]
    score, rank = _score_variants(rec, _deletion_variants(indices, orders), target)
    return pd.DataFrame({"step": np.arange(n + 1), "fraction_deleted": np.arange(n + 1) / n,
                         "score": score.reshape(repeats, n + 1).mean(axis=0),
                         "rank": rank.reshape(repeats, n + 1).mean(axis=0)})


def area_under_deletion(curve, column: str = "score", normalise: bool = True) -> float:
    """Normalised area under a deletion curve: small = the score falls fast = faithful.

    The values ``v`` of steps 0..n are rescaled to ``(v - v_n) / (v_0 - v_n)`` (1 for the
    full history, 0 for the empty one; every order of the same history has the same two
    ends) and integrated over the fraction deleted (0..1) with the trapezoid rule. A curve
    that drops at once has area near 0, a straight line 0.5; it can leave [0, 1] when the
    score overshoots, and it is unstable when the full and the empty history score the
    target about equally (a small ``v_0 - v_n``): compare such cases on ranks or raw
    areas. With ``column="rank"`` the same formula measures how fast the rank worsens. When
    the two ends are equal (e.g. the target is top-ranked with and without the history) the
    normalised area is undefined and NaN is returned (``np.nanmean`` skips it).

    Args:
        curve: a :func:`deletion_curve` / :func:`random_deletion_curve` table, or a 1-D
            array of the values of steps 0..n.
        column: the table column to use, ``"score"`` or ``"rank"``.
        normalise: False integrates the raw values instead (the mean score along the curve;
            comparable between orders of the same history only).

    Returns:
        The area, a float (NaN when normalising and the ends are equal).

    Raises:
        ValueError: a table without ``column``, or fewer than 2 steps, or non-finite values.

    Explained in notebook 14.
    """
    if isinstance(curve, pd.DataFrame):
        if column not in curve:
            raise ValueError(f"the curve has no column {column!r}; its columns are "
                             f"{list(curve.columns)}")
        curve = curve[column].to_numpy()
    values = _vector("curve", curve)
    if len(values) < 2:
        raise ValueError(f"a deletion curve has steps 0..n with n >= 1, got {len(values)} value")
    fractions = np.linspace(0.0, 1.0, len(values))
    if not normalise:
        return float(np.trapezoid(values, fractions))
    full, empty = values[0], values[-1]
    if full == empty:
        return float("nan")
    return float(np.trapezoid((values - empty) / (full - empty), fractions))


# ---------------------------------------------------------------------------- comparison


def _vector(name: str, values) -> np.ndarray:
    """A non-empty 1-D float array of finite numbers."""
    if isinstance(values, str | bytes) or np.ndim(values) != 1:
        raise ArgumentError(f"{name} must be a 1-D array of numbers, got {values!r:.80}")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ArgumentError(f"{name} must hold numbers: {err}") from err
    if array.size == 0:
        raise ValueError(f"{name} is empty; it needs one value per history item")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has non-finite values (NaN or inf) at positions "
                         f"{np.flatnonzero(~np.isfinite(array)).tolist()[:10]}")
    return array


def agreement(a, b, top: int = 1) -> dict:
    """How much two attributions of the same history agree.

    Args:
        a, b: attribution vectors of equal length (one value per history position).
        top: compare the ``top`` most important positions of each (largest values; ties
            keep the older position first).

    Returns:
        ``{"top": top, "top_overlap": |top(a) & top(b)| / top, "spearman": rho}``:
        ``top_overlap`` is 1 when the top positions are the same; ``rho`` is Spearman's rank
        correlation (1 same order, -1 reversed). Convention for constant vectors, where
        Spearman is undefined: if both are constant (both rank all positions equal) rho is
        1.0, if only one is constant (it carries no ranking) rho is 0.0; never NaN.

    Raises:
        ValueError: vectors that are not 1-D, empty, non-finite or of different lengths;
            ``top`` not in 1..len(a).

    Explained in notebook 14.
    """
    a, b = _vector("a", a), _vector("b", b)
    if len(a) != len(b):
        raise ValueError(f"a and b must have one value per history position each, got "
                         f"lengths {len(a)} and {len(b)}")
    top = check_int("top", top, maximum=len(a))
    best_a = set(np.argsort(-a, kind="stable")[:top].tolist())
    best_b = set(np.argsort(-b, kind="stable")[:top].tolist())
    constant_a, constant_b = bool(np.all(a == a[0])), bool(np.all(b == b[0]))
    if constant_a or constant_b:
        rho = 1.0 if constant_a and constant_b else 0.0
    else:
        rho = float(stats.spearmanr(a, b).statistic)
    return {"top": top, "top_overlap": len(best_a & best_b) / top, "spearman": rho}


def explain(rec: SequenceRecommender, history, target_item) -> pd.DataFrame:
    """The attributions of one recommendation side by side, one row per history item.

    Args:
        rec: a fitted SASRecRecommender.
        history: item ids, oldest first (only the last ``rec.max_len`` are read).
        target_item: the recommended item id to explain; not in the history.

    Returns:
        Rows oldest first: ``position``, ``item_id``, ``attention`` (last block),
        ``attention_rollout``, ``gradient_x_input``, ``score_drop``, ``rank_without`` and
        ``rank_change`` (leave-one-out, see :func:`leave_one_out`). ``attrs`` holds
        ``target_item``, the original ``score`` and ``rank``.

    Raises:
        ValueError: what :func:`gradient_x_input` and :func:`leave_one_out` raise.

    Explained in notebook 14.
    """
    model = _check_sasrec(rec)
    ids, indices = _window(rec, history)
    target = _target_column(rec, target_item)
    _check_unseen(target, indices, target_item)
    maps = _attention_maps(model, indices)
    table = _leave_one_out(rec, ids, indices, target)
    table.insert(2, "attention", maps[-1][-1])
    table.insert(3, "attention_rollout", _rollout(maps))
    table.insert(4, "gradient_x_input", _gradient_x_input(model, indices, target))
    original = dict(table.attrs)
    table = table.drop(columns="score_without")
    table.attrs = original | {"target_item": target_item}
    return table
