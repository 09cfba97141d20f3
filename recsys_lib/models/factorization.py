"""Matrix factorisation: explicit MF by SGD, BPR-MF, implicit ALS and the same MF in Keras.

Notebook 04 derives all four; this module is the reference the notebook checks itself against.

* **Explicit MF with biases** (rating prediction, Funk / Koren). The prediction is
  ``r_hat(u, i) = mu + b_u[u] + b_i[i] + P[u] . Q[i]`` and the loss over a set of observed
  ratings is

      L = sum over observed (u, i) of  (r_ui - r_hat(u, i))^2
                                     + l2 * (b_u[u]^2 + b_i[i]^2 + |P[u]|^2 + |Q[i]|^2)

  The regulariser is **per observation**, as in Funk's and Koren's SGD: a user with 200
  ratings has their parameters penalised 200 times. ``mu`` is **fixed** to the mean training
  rating and not learned, so :func:`mf_gradients` returns gradients for ``b_u, b_i, P, Q``.
  :class:`MatrixFactorization` takes plain gradient steps ``theta -= lr * dL_batch/dtheta`` on
  mini-batches with exactly these gradients. Koren's per-rating update
  ``p_u += gamma * (e * q_i - l2 * p_u)`` is the same step with ``gamma = 2 * lr`` (our loss
  has no factor 1/2), and the same ``l2``.
* **BPR-MF** (Rendle et al. 2009) for implicit feedback: :class:`BPRRecommender`.
* **Implicit ALS** (Hu, Koren & Volinsky 2008): :class:`ALSRecommender` and
  :func:`als_solve_rows`.
* **Keras MF**: :func:`build_keras_mf` computes the same prediction and, in training, the
  same loss divided by the batch size; :func:`keras_mf_set_weights` /
  :func:`keras_mf_get_params` move parameters between NumPy and Keras.

Parameters of the explicit model are a dict ``{"mu": float, "b_u": (n_users,),
"b_i": (n_items,), "P": (n_users, k), "Q": (n_items, k)}`` (see :func:`init_mf_params`);
``users`` and ``items`` given to the pure functions are 0-based indices (see
:class:`recsys_lib.preprocessing.IdEncoder`), while the recommenders take original ids.
This module does not import Keras; only the Keras helpers do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from recsys_lib.checks import check_float, check_int, check_ints
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.models.base import Recommender
from recsys_lib.sampling import sample_negatives

#: Keys of an explicit-MF parameter dict, and the ones that are learned (``mu`` is fixed).
MF_PARAM_NAMES = ("mu", "b_u", "b_i", "P", "Q")
MF_LEARNED = ("b_u", "b_i", "P", "Q")

MFParams = dict[str, Any]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        check_float(name, value)


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        check_float(name, value, strict=False)


def init_mf_params(n_users: int, n_items: int, n_factors: int, global_mean: float = 0.0,
                   init_std: float = 0.1, seed: int = DEFAULT_SEED) -> MFParams:
    """Starting parameters: zero biases, factors drawn from N(0, init_std^2).

    Args:
        n_users, n_items, n_factors: table sizes (>= 1).
        global_mean: ``mu``, usually the mean training rating.
        init_std: standard deviation of the factors (>= 0). Not 0 when training: with all
            factors at 0 every factor gradient is 0 too and they never move.
        seed: the same seed gives the same parameters.

    Returns:
        A parameter dict (float64 arrays). Explained in notebook 04.
    """
    check_ints(n_users=n_users, n_items=n_items, n_factors=n_factors)
    _check_non_negative(init_std=init_std)
    rng = np.random.default_rng(seed)
    return {
        "mu": float(global_mean),
        "b_u": np.zeros(n_users),
        "b_i": np.zeros(n_items),
        "P": rng.normal(0.0, init_std, (n_users, n_factors)),
        "Q": rng.normal(0.0, init_std, (n_items, n_factors)),
    }


def _check_params(params: MFParams) -> tuple[int, int]:
    """(n_users, n_items) of a parameter dict, after checking its keys and shapes."""
    missing = [k for k in MF_PARAM_NAMES if k not in params]
    if missing:
        raise ValueError(f"params is missing {missing}; build it with init_mf_params()")
    P, Q = np.asarray(params["P"]), np.asarray(params["Q"])
    b_u, b_i = np.asarray(params["b_u"]), np.asarray(params["b_i"])
    if P.ndim != 2 or Q.ndim != 2 or P.shape[1] != Q.shape[1]:
        raise ValueError(f"P and Q must be 2-D with the same number of columns (factors), got "
                         f"shapes {P.shape} and {Q.shape}")
    if b_u.shape != (len(P),) or b_i.shape != (len(Q),):
        raise ValueError(f"b_u must have shape ({len(P)},) and b_i ({len(Q)},) to match P and "
                         f"Q, got {b_u.shape} and {b_i.shape}")
    if np.ndim(params["mu"]) != 0:
        raise ValueError(f"mu must be a scalar, got shape {np.shape(params['mu'])}")
    return len(P), len(Q)


def _check_indices(values: ArrayLike, size: int, name: str) -> NDArray[np.int64]:
    idx = np.asarray(values)
    if idx.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be integer indices 0..{size - 1}, got dtype {idx.dtype}; "
                         "encode ids first (IdEncoder)")
    idx = idx.astype(np.int64)
    bad = idx[(idx < 0) | (idx >= size)]
    if bad.size:
        raise ValueError(f"{name} has indices outside 0..{size - 1}, e.g. {bad[:5].tolist()}")
    return idx


def _check_batch(params: MFParams, users: ArrayLike, items: ArrayLike,
                 ratings: ArrayLike | None = None) -> tuple[np.ndarray, ...]:
    n_users, n_items = _check_params(params)
    u = _check_indices(users, n_users, "users")
    i = _check_indices(items, n_items, "items")
    if len(u) != len(i):
        raise ValueError(f"users and items must have the same length, got {len(u)} and {len(i)}")
    if ratings is None:
        return u, i
    r = np.asarray(ratings, dtype=np.float64)
    if r.shape != u.shape:
        raise ValueError(f"ratings must have shape {u.shape} like users, got {r.shape}")
    return u, i, r


def _predict(params: MFParams, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    P, Q = params["P"], params["Q"]
    return (params["mu"] + params["b_u"][u] + params["b_i"][i]
            + np.einsum("nk,nk->n", P[u], Q[i]))


def mf_predict(params: MFParams, users: ArrayLike, items: ArrayLike) -> NDArray[np.float64]:
    """Predicted ratings ``mu + b_u[u] + b_i[i] + P[u] . Q[i]`` for pairs (users[n], items[n]).

    Args:
        params: parameter dict (see :func:`init_mf_params`).
        users, items: 1-D integer indices of the same length.

    Returns:
        (n,) predictions (not clipped to the rating scale).

    Raises:
        ValueError: malformed params, indices out of range or lengths that differ.

    Explained in notebook 04.
    """
    u, i = _check_batch(params, users, items)
    return _predict(params, u, i)


def mf_loss(params: MFParams, users: ArrayLike, items: ArrayLike, ratings: ArrayLike,
            l2: float) -> float:
    """Regularised squared error, summed over the given ratings (regulariser per observation).

    ``L = sum_n (r_n - r_hat_n)^2 + l2 * (b_u[u_n]^2 + b_i[i_n]^2 + |P[u_n]|^2 + |Q[i_n]|^2)``.

    Args:
        params: parameter dict.
        users, items: 1-D integer indices; ratings: the observed ratings, same length.
        l2: regularisation strength (>= 0).

    Returns:
        The loss (a sum, not a mean: divide by ``len(ratings)`` to compare data sets).

    Raises:
        ValueError: as :func:`mf_predict`, or ``l2 < 0``.

    Explained in notebook 04.
    """
    _check_non_negative(l2=l2)
    u, i, r = _check_batch(params, users, items, ratings)
    err = r - _predict(params, u, i)
    reg = (params["b_u"][u] ** 2 + params["b_i"][i] ** 2
           + np.sum(params["P"][u] ** 2, axis=1) + np.sum(params["Q"][i] ** 2, axis=1))
    return float(np.sum(err ** 2) + l2 * np.sum(reg))


def _row_gradients(params: MFParams, u: np.ndarray, i: np.ndarray, r: np.ndarray,
                   l2: float) -> tuple[np.ndarray, ...]:
    """Each observation's gradient terms (g_bu, g_bi, g_P, g_Q), one row per rating.

    For one rating, with e = r - r_hat:  dL/db_u = -2e + 2 l2 b_u, dL/db_i = -2e + 2 l2 b_i,
    dL/dp_u = -2e q_i + 2 l2 p_u, dL/dq_i = -2e p_u + 2 l2 q_i.
    """
    b_u, b_i, p, q = params["b_u"][u], params["b_i"][i], params["P"][u], params["Q"][i]
    err = (r - _predict(params, u, i))[:, None]
    return (-2 * err[:, 0] + 2 * l2 * b_u, -2 * err[:, 0] + 2 * l2 * b_i,
            -2 * err * q + 2 * l2 * p, -2 * err * p + 2 * l2 * q)


def mf_gradients(params: MFParams, users: ArrayLike, items: ArrayLike, ratings: ArrayLike,
                 l2: float) -> dict[str, NDArray[np.float64]]:
    """Exact gradients of :func:`mf_loss` with respect to the learned parameters.

    ``mu`` is fixed to the training mean and not learned, so it has no entry. A user (or
    item) that appears in several ratings gets the sum of their terms; one that appears in
    none gets 0.

    Args:
        params, users, items, ratings, l2: as in :func:`mf_loss`.

    Returns:
        ``{"b_u": (n_users,), "b_i": (n_items,), "P": (n_users, k), "Q": (n_items, k)}``,
        shaped like the parameters (check them by finite differences, notebook 04).

    Raises:
        ValueError: as :func:`mf_loss`.
    """
    _check_non_negative(l2=l2)
    u, i, r = _check_batch(params, users, items, ratings)
    g_bu, g_bi, g_p, g_q = _row_gradients(params, u, i, r, l2)
    grads = {name: np.zeros(np.shape(params[name])) for name in MF_LEARNED}
    np.add.at(grads["b_u"], u, g_bu)
    np.add.at(grads["b_i"], i, g_bi)
    np.add.at(grads["P"], u, g_p)
    np.add.at(grads["Q"], i, g_q)
    return grads


def _sgd_step(params: MFParams, u: np.ndarray, i: np.ndarray, r: np.ndarray, l2: float,
              lr: float) -> None:
    """One in-place step ``theta -= lr * dL_batch/dtheta`` (all rows use the old values)."""
    g_bu, g_bi, g_p, g_q = _row_gradients(params, u, i, r, l2)
    np.add.at(params["b_u"], u, -lr * g_bu)
    np.add.at(params["b_i"], i, -lr * g_bi)
    np.add.at(params["P"], u, -lr * g_p)
    np.add.at(params["Q"], i, -lr * g_q)


# -------------------------------------------------------------------- explicit MF: model
class MatrixFactorization(Recommender):
    """Biased matrix factorisation for ratings, trained by mini-batch SGD in NumPy.

    Minimises :func:`mf_loss` (``mu`` fixed to the mean training rating). Each epoch visits
    the training ratings in a new random order, in mini-batches of ``batch_size`` ratings,
    and takes the step ``theta -= learning_rate * gradient of the batch's loss`` (a sum over
    the batch, so each rating moves its parameters as much as in per-rating SGD;
    ``batch_size=1`` *is* per-rating SGD, only slower). For ranking, :meth:`score` gives
    the predicted rating of every item: rating prediction is not ranking, and notebook 05
    shows the price.

    Args:
        n_factors: length of the user and item vectors.
        learning_rate: step size (Koren's gamma is ``2 * learning_rate``).
        l2: per-observation regularisation, as in :func:`mf_loss`.
        epochs: passes over the training ratings.
        batch_size: ratings per SGD step.
        init_std: standard deviation of the initial factors.
        seed: seeds the initial factors and the shuffling; same seed, same model.

    Attributes set by ``fit``:
        params_: the parameter dict (see :func:`init_mf_params`). Items of the catalogue
            with no training rating keep zero factors and bias (they predict ``mu + b_u``).
        history_: one dict per epoch: ``epoch``, ``train_loss`` (:func:`mf_loss` on all
            training ratings), ``train_rmse``, ``val_rmse`` (NaN without validation).
        val_skipped_: validation rows left out of ``val_rmse`` because their user or item
            is not in the training data.

    Explained in notebook 04.
    """

    name = "mf"
    uses_ratings = True

    def __init__(self, n_factors: int = 64, learning_rate: float = 0.01, l2: float = 0.1,
                 epochs: int = 20, batch_size: int = 256, init_std: float = 0.1,
                 seed: int = DEFAULT_SEED) -> None:
        check_ints(n_factors=n_factors, epochs=epochs, batch_size=batch_size)
        check_int("seed", seed, minimum=0)
        _check_positive(learning_rate=learning_rate)
        _check_non_negative(l2=l2, init_std=init_std)
        self.n_factors, self.learning_rate, self.l2 = n_factors, learning_rate, l2
        self.epochs, self.batch_size = epochs, batch_size
        self.init_std, self.seed = init_std, seed

    def fit(self, train: pd.DataFrame, items: ArrayLike | None = None,
            validation: pd.DataFrame | None = None) -> MatrixFactorization:
        """Learn from ``train`` (needs a ``rating`` column); track RMSE on ``validation``.

        Args:
            train: ``user_id, item_id, rating`` with one rating per (user, item) pair.
            items: extra catalogue items with no ratings (see :class:`Recommender`).
            validation: optional ``user_id, item_id, rating`` table for ``history_``.

        Raises:
            ValueError: no ``rating`` column, repeated (user, item) pairs, a validation
                table without those columns, or what :meth:`Recommender.fit` rejects.
        """
        if not isinstance(train, pd.DataFrame) or not {"user_id", "item_id"} <= set(train):
            return super().fit(train, items)  # the base class explains what is wrong
        if "rating" not in train:
            raise ValueError("MatrixFactorization needs a 'rating' column in train; for "
                             "implicit data use BPRRecommender or ALSRecommender")
        if train.duplicated(["user_id", "item_id"]).any():
            raise ValueError("train rates some (user, item) pair more than once; keep one "
                             "rating per pair first (recsys_lib.preprocessing.clean_ratings)")
        if validation is not None:
            missing = {"user_id", "item_id", "rating"} - set(validation.columns)
            if missing:
                raise ValueError(f"validation is missing column(s) {sorted(missing)}")
        self._validation = validation
        try:
            return super().fit(train, items)
        finally:
            del self._validation

    def _encode_validation(self) -> tuple[np.ndarray, ...] | None:
        val = self._validation
        if val is None:
            self.val_skipped_ = 0
            return None
        known = (val["user_id"].isin(self.users_.ids_) & val["item_id"].isin(self.items_.ids_))
        self.val_skipped_ = int((~known).sum())
        val = val[known]
        if val.empty:
            return None
        return (self.users_.transform(val["user_id"]), self.items_.transform(val["item_id"]),
                val["rating"].to_numpy(dtype=np.float64))

    def _fit(self, matrix: sp.csr_matrix) -> None:
        coo = matrix.tocoo()
        u, i, r = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
        val = self._encode_validation()
        self.params_ = init_mf_params(matrix.shape[0], matrix.shape[1], self.n_factors,
                                      float(r.mean()), self.init_std, self.seed)
        unrated = np.diff(matrix.tocsc().indptr) == 0
        self.params_["Q"][unrated] = 0.0
        rng = np.random.default_rng([self.seed, 1])
        self.history_ = []
        for epoch in range(1, self.epochs + 1):
            order = rng.permutation(len(r))
            for start in range(0, len(r), self.batch_size):
                batch = order[start:start + self.batch_size]
                _sgd_step(self.params_, u[batch], i[batch], r[batch], self.l2,
                          self.learning_rate)
            self.history_.append(self._epoch_record(epoch, u, i, r, val))

    def _epoch_record(self, epoch: int, u: np.ndarray, i: np.ndarray, r: np.ndarray,
                      val: tuple[np.ndarray, ...] | None) -> dict:
        val_rmse = np.nan
        if val is not None:
            val_rmse = float(np.sqrt(np.mean((val[2] - _predict(self.params_, *val[:2])) ** 2)))
        train_rmse = float(np.sqrt(np.mean((r - _predict(self.params_, u, i)) ** 2)))
        return {"epoch": epoch, "train_loss": mf_loss(self.params_, u, i, r, self.l2),
                "train_rmse": train_rmse, "val_rmse": val_rmse}

    def predict(self, users: ArrayLike, items: ArrayLike) -> NDArray[np.float64]:
        """Predicted ratings for the pairs (users[n], items[n]) of original ids.

        Raises:
            RuntimeError: not fitted.
            ValueError: a user or item that is not in the training data (cold start: this
                model has no vector for it; fall back to a baseline), or lengths that differ.
        """
        if not hasattr(self, "params_"):
            raise RuntimeError("MatrixFactorization is not fitted: call fit(train) first")
        users, items = np.asarray(users).ravel(), np.asarray(items).ravel()
        if len(users) != len(items):
            raise ValueError(f"users and items must have the same length, got {len(users)} "
                             f"and {len(items)}")
        u = self._user_indices(users)
        try:
            i = self.items_.transform(items)
        except ValueError as err:
            raise ValueError(f"{err}. MatrixFactorization can only predict items in its "
                             "training catalogue") from None
        return _predict(self.params_, u, i)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        p = self.params_
        return (p["mu"] + p["b_u"][user_idx, None] + p["b_i"][None, :]
                + p["P"][user_idx] @ p["Q"].T)


# ------------------------------------------------------------------------------ BPR-MF
class BPRRecommender(Recommender):
    """BPR-MF (Rendle et al. 2009): learn to score a seen item above an unseen one.

    Score ``x_ui = P[u] . Q[i] + b[i]``. For triples (u, i seen by u, j drawn uniformly from
    the items u has not seen) it minimises, summed over the triples,
    ``-log sigmoid(x_ui - x_uj) + l2 * (|P[u]|^2 + |Q[i]|^2 + |Q[j]|^2 + b[i]^2 + b[j]^2)``
    by mini-batch SGD: each epoch visits every training interaction once as (u, i) in a
    random order, draws one j for each, and takes the step
    ``theta -= learning_rate * gradient of the batch's loss`` (summed over the batch,
    scattered with ``np.add.at``).

    Args:
        n_factors: length of the user and item vectors.
        learning_rate: step size.
        l2: regularisation per triple.
        epochs: passes over the interactions.
        batch_size: triples per step.
        init_std: standard deviation of the initial factors.
        seed: seeds the initialisation, the order and the negatives.

    Attributes set by ``fit``:
        P_, Q_, b_: user factors, item factors, item biases.
        history_: one dict per epoch: ``epoch`` and ``loss`` (the mean BPR loss of the
            epoch's triples, regularisation included, measured as they were trained on).

    Explained in notebook 04.
    """

    name = "bpr"

    def __init__(self, n_factors: int = 64, learning_rate: float = 0.05, l2: float = 0.005,
                 epochs: int = 40, batch_size: int = 256, init_std: float = 0.1,
                 seed: int = DEFAULT_SEED) -> None:
        check_ints(n_factors=n_factors, epochs=epochs, batch_size=batch_size)
        check_int("seed", seed, minimum=0)
        _check_positive(learning_rate=learning_rate)
        _check_non_negative(l2=l2, init_std=init_std)
        self.n_factors, self.learning_rate, self.l2 = n_factors, learning_rate, l2
        self.epochs, self.batch_size = epochs, batch_size
        self.init_std, self.seed = init_std, seed

    def _fit(self, matrix: sp.csr_matrix) -> None:
        n_users, n_items = matrix.shape
        rng = np.random.default_rng(self.seed)
        self.P_ = rng.normal(0.0, self.init_std, (n_users, self.n_factors))
        self.Q_ = rng.normal(0.0, self.init_std, (n_items, self.n_factors))
        self.b_ = np.zeros(n_items)
        coo = matrix.tocoo()
        users, pos = coo.row.astype(np.int64), coo.col.astype(np.int64)
        self.history_ = []
        for epoch in range(1, self.epochs + 1):
            order = rng.permutation(len(users))
            u_all, i_all = users[order], pos[order]
            j_all = sample_negatives(matrix, u_all, rng)[:, 0]  # the epoch's negatives at once
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                batch = slice(start, start + self.batch_size)
                total += self._step(u_all[batch], i_all[batch], j_all[batch])
            self.history_.append({"epoch": epoch, "loss": total / len(order)})

    def _step(self, u: np.ndarray, i: np.ndarray, j: np.ndarray) -> float:
        """One SGD step on triples (u, i, j); returns their summed loss before the step."""
        p, q_i, q_j = self.P_[u], self.Q_[i], self.Q_[j]
        b_i, b_j = self.b_[i], self.b_[j]
        x = np.einsum("nk,nk->n", p, q_i - q_j) + b_i - b_j
        reg = (np.sum(p ** 2, 1) + np.sum(q_i ** 2, 1) + np.sum(q_j ** 2, 1) + b_i ** 2
               + b_j ** 2)
        loss = float(np.sum(np.logaddexp(0.0, -x)) + self.l2 * np.sum(reg))
        g = expit(-x)[:, None]  # -d(-log sigmoid(x))/dx
        lr, two_l2 = self.learning_rate, 2 * self.l2
        np.add.at(self.P_, u, -lr * (-g * (q_i - q_j) + two_l2 * p))
        np.add.at(self.Q_, i, -lr * (-g * p + two_l2 * q_i))
        np.add.at(self.Q_, j, -lr * (g * p + two_l2 * q_j))
        np.add.at(self.b_, i, -lr * (-g[:, 0] + two_l2 * b_i))
        np.add.at(self.b_, j, -lr * (g[:, 0] + two_l2 * b_j))
        return loss

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.P_[user_idx] @ self.Q_.T + self.b_[None, :]


# --------------------------------------------------------------------------- implicit ALS
def als_solve_rows(ratings: sp.spmatrix, fixed: np.ndarray, l2: float,
                   alpha: float) -> NDArray[np.float64]:
    """One half-step of implicit ALS: the best vector for every row, the other side fixed.

    Row u prefers the columns it has a positive entry r_ui > 0 in (p_ui = 1, else 0), with
    confidence c_ui = 1 + alpha * r_ui (1 where r_ui = 0). The minimiser of
    ``sum_i c_ui (p_ui - x_u . y_i)^2 + l2 |x_u|^2`` is
    ``x_u = (Y^T C_u Y + l2 I)^-1 Y^T C_u p_u``. Hu, Koren & Volinsky's trick:
    ``Y^T C_u Y = Y^T Y + Y^T (C_u - I) Y``, where ``Y^T Y`` is shared by all rows and
    ``C_u - I`` is non-zero only on the row's entries, so a row costs O(n_u k^2 + k^3)
    instead of O(n_items k^2); ``Y^T C_u p_u`` also needs the row's entries only. Rows are
    solved in blocks of similar length, all of a block's k x k systems in one call.

    Args:
        ratings: (n_rows, n_cols) sparse matrix of r >= 0 (1 per interaction, or counts).
        fixed: (n_cols, k) factors of the other side.
        l2: regularisation (> 0 keeps every system well posed).
        alpha: confidence slope (>= 0).

    Returns:
        (n_rows, k) new factors; rows with no positive entry get 0.

    Raises:
        ValueError: negative entries, mismatched shapes, ``l2 <= 0`` or ``alpha < 0``.

    Explained in notebook 04.
    """
    _check_positive(l2=l2)
    _check_non_negative(alpha=alpha)
    matrix = sp.csr_matrix(ratings, dtype=np.float64, copy=True)
    matrix.eliminate_zeros()
    if matrix.nnz and matrix.data.min() < 0:
        raise ValueError("ratings has negative entries; implicit ALS needs r >= 0 "
                         "(interactions or counts)")
    if fixed.ndim != 2 or matrix.shape[1] != len(fixed):
        raise ValueError(f"ratings has {matrix.shape[1]} columns but fixed has shape "
                         f"{fixed.shape}; pass the other side's (n_cols, k) factors")
    matrix.data *= alpha  # C - I on the entries
    k = fixed.shape[1]
    base = fixed.T @ fixed + l2 * np.eye(k)
    out = np.zeros((matrix.shape[0], k))
    counts = np.diff(matrix.indptr)
    rows = np.flatnonzero(counts)
    rows = rows[np.argsort(counts[rows], kind="stable")]  # similar lengths share a block
    for block in _row_blocks(counts[rows]):
        out[rows[block]] = _solve_block(matrix, rows[block], fixed, base)
    return out


def _row_blocks(sorted_counts: np.ndarray, max_rows: int = 256,
                max_cells: int = 1 << 15) -> list[slice]:
    """Cut rows sorted by length into blocks of at most ``max_rows`` rows whose padded size
    (rows x longest row) stays under ``max_cells`` (a single long row gets its own block)."""
    blocks, start = [], 0
    while start < len(sorted_counts):
        n = min(max_rows, len(sorted_counts) - start)
        while n > 1 and n * sorted_counts[start + n - 1] > max_cells:
            n //= 2
        blocks.append(slice(start, start + n))
        start += n
    return blocks


def _solve_block(matrix: sp.csr_matrix, rows: np.ndarray, fixed: np.ndarray,
                 base: np.ndarray) -> np.ndarray:
    """Exact ALS solutions for a block of rows at once, their entries padded to one length.

    ``matrix`` holds ``alpha * r``. Padded cells get weight 0, so
    ``A_u = base + Y_u^T diag(alpha r_u) Y_u`` and ``b_u = Y_u^T (1 + alpha r_u)`` are exact.
    """
    counts = np.diff(matrix.indptr)[rows]
    offsets = np.arange(counts.max())
    valid = offsets[None, :] < counts[:, None]
    pos = np.where(valid, matrix.indptr[rows][:, None] + offsets[None, :], 0)
    extra = np.where(valid, matrix.data[pos], 0.0)
    y = fixed[matrix.indices[pos]]  # (rows, longest, k)
    a = base + np.matmul((y * extra[..., None]).transpose(0, 2, 1), y)
    b = np.einsum("rlk,rl->rk", y, np.where(valid, 1.0 + extra, 0.0))
    return np.linalg.solve(a, b[..., None])[..., 0]


class ALSRecommender(Recommender):
    """Implicit-feedback matrix factorisation by alternating least squares (Hu et al. 2008).

    Every (user, item) cell counts: preference 1 where the user interacted, 0 elsewhere,
    weighted by the confidence ``c = 1 + alpha * r`` (r = 1 for an interaction, so seen
    cells weigh ``1 + alpha`` and unseen cells 1). It minimises
    ``sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + l2 (sum_u |x_u|^2 + sum_i |y_i|^2)`` by
    solving exactly for all users with items fixed, then all items with users fixed
    (:func:`als_solve_rows`), ``iterations`` times. Scores are ``x_u . y_i``. Unlike
    :func:`mf_loss`, ``l2`` penalises each vector once, not once per observation (as in the
    paper), and the squared error runs over all n_users x n_items cells: hence good values
    of ``l2`` here (around 10) are far larger than for the explicit model.

    Args:
        n_factors: length of the vectors.
        l2: regularisation (> 0).
        alpha: confidence slope (>= 0; 0 treats seen and unseen cells alike).
        iterations: rounds of (users, items) updates.
        init_std: standard deviation of the initial item factors.
        seed: seeds the initialisation; the updates themselves are deterministic.

    Attributes set by ``fit``:
        X_, Y_: user and item factors.

    Explained in notebook 04.
    """

    name = "als"

    def __init__(self, n_factors: int = 64, l2: float = 10.0, alpha: float = 10.0,
                 iterations: int = 10, init_std: float = 0.01,
                 seed: int = DEFAULT_SEED) -> None:
        check_ints(n_factors=n_factors, iterations=iterations)
        _check_positive(l2=l2)
        _check_non_negative(alpha=alpha, init_std=init_std)
        self.n_factors, self.l2, self.alpha, self.iterations = n_factors, l2, alpha, iterations
        self.init_std, self.seed = init_std, seed

    def _fit(self, matrix: sp.csr_matrix) -> None:
        rng = np.random.default_rng(self.seed)
        n_users, n_items = matrix.shape
        self.X_ = np.zeros((n_users, self.n_factors))
        self.Y_ = rng.normal(0.0, self.init_std, (n_items, self.n_factors))
        matrix_t = matrix.T.tocsr()
        for _ in range(self.iterations):
            self.X_ = als_solve_rows(matrix, self.Y_, self.l2, self.alpha)
            self.Y_ = als_solve_rows(matrix_t, self.X_, self.l2, self.alpha)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.X_[user_idx] @ self.Y_.T


# ------------------------------------------------------------------------------- Keras MF
_KERAS_CLASSES: dict[str, type] = {}


def _mf_output_layer() -> type:
    """The Keras layer that adds up the MF prediction (defined on first use: lazy Keras)."""
    if "MFOutput" in _KERAS_CLASSES:
        return _KERAS_CLASSES["MFOutput"]
    import keras

    @keras.saving.register_keras_serializable(package="recsys_lib")
    class MFOutput(keras.layers.Layer):
        """``mu + b_u + b_i + p . q`` and the per-observation L2 penalty (as a layer loss).

        ``mu`` is a non-trainable weight. The added loss is
        ``l2 * mean over the batch of (b_u^2 + b_i^2 + |p|^2 + |q|^2)``, so with a mean
        squared error the training loss is :func:`mf_loss` divided by the batch size.
        """

        def __init__(self, global_mean: float = 0.0, l2: float = 0.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.global_mean, self.l2 = float(global_mean), float(l2)

        def build(self, input_shape: Any) -> None:
            self.mu = self.add_weight(shape=(), name="mu", trainable=False,
                                      initializer=keras.initializers.Constant(self.global_mean))

        def call(self, inputs: list) -> Any:
            p, q, b_u, b_i = inputs
            ops = keras.ops
            if self.l2:
                reg = (ops.sum(p * p, axis=-1) + ops.sum(q * q, axis=-1)
                       + ops.squeeze(b_u * b_u, -1) + ops.squeeze(b_i * b_i, -1))
                self.add_loss(self.l2 * ops.mean(reg))
            return (self.mu + ops.squeeze(b_u, -1) + ops.squeeze(b_i, -1)
                    + ops.sum(p * q, axis=-1))

        def get_config(self) -> dict:
            return {**super().get_config(), "global_mean": self.global_mean, "l2": self.l2}

    _KERAS_CLASSES["MFOutput"] = MFOutput
    return MFOutput


def build_keras_mf(n_users: int, n_items: int, n_factors: int, l2: float = 0.0,
                   global_mean: float = 0.0, init_std: float = 0.1,
                   seed: int | None = None) -> Any:
    """The explicit MF model in Keras 3: same prediction, same (per-observation) loss.

    Inputs ``user`` and ``item`` are integer index tensors of shape (batch,); embedding
    layers ``P`` (n_users, k), ``Q`` (n_items, k), ``b_u`` (n_users, 1), ``b_i`` (n_items,
    1) look up the rows, and the layer ``mf`` returns ``mu + b_u + b_i + p . q`` of shape
    (batch,). Compiled with ``loss="mse"`` the training loss of a batch of B ratings is
    ``mf_loss(batch) / B`` (the layer adds the L2 term itself, per observation), so
    minimising it is the same problem as :class:`MatrixFactorization`, and
    ``keras.optimizers.SGD(learning_rate=lr * B)`` with ``batch_size=B`` takes the same
    steps as ``MatrixFactorization(learning_rate=lr, batch_size=B)``. ``mu`` is a
    non-trainable weight.

    Args:
        n_users, n_items, n_factors: table sizes.
        l2: per-observation regularisation, as in :func:`mf_loss`.
        global_mean: ``mu`` (the mean training rating).
        init_std: standard deviation of the initial factors (biases start at 0).
        seed: seed for the initial factors.

    Returns:
        An uncompiled ``keras.Model``. Explained in notebook 04.

    Raises:
        ValueError: sizes < 1 or ``l2 < 0``.
    """
    check_ints(n_users=n_users, n_items=n_items, n_factors=n_factors)
    _check_non_negative(l2=l2, init_std=init_std)
    import keras

    user = keras.Input(shape=(), dtype="int32", name="user")
    item = keras.Input(shape=(), dtype="int32", name="item")
    normal = keras.initializers.RandomNormal(stddev=init_std, seed=seed)
    seed_q = None if seed is None else seed + 1
    p = keras.layers.Embedding(n_users, n_factors, embeddings_initializer=normal,
                               name="P")(user)
    q = keras.layers.Embedding(n_items, n_factors, name="Q",
                               embeddings_initializer=keras.initializers.RandomNormal(
                                   stddev=init_std, seed=seed_q))(item)
    b_u = keras.layers.Embedding(n_users, 1, embeddings_initializer="zeros", name="b_u")(user)
    b_i = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="b_i")(item)
    out = _mf_output_layer()(global_mean, l2, name="mf")([p, q, b_u, b_i])
    return keras.Model(inputs={"user": user, "item": item}, outputs=out, name="keras_mf")


def _keras_layers(model: Any) -> dict[str, Any]:
    try:
        return {name: model.get_layer(name) for name in ("P", "Q", "b_u", "b_i", "mf")}
    except ValueError as err:
        raise ValueError(f"model is not a build_keras_mf model ({err}); build it with "
                         "build_keras_mf()") from None


def keras_mf_set_weights(model: Any, params: MFParams) -> None:
    """Load a NumPy parameter dict into a :func:`build_keras_mf` model (in place).

    Raises:
        ValueError: the model is not from :func:`build_keras_mf`, or the shapes differ
            (build the model with the same n_users, n_items, n_factors).

    Explained in notebook 04.
    """
    _check_params(params)
    layers = _keras_layers(model)
    values = {"P": params["P"], "Q": params["Q"],
              "b_u": np.asarray(params["b_u"])[:, None], "b_i": np.asarray(params["b_i"])[:, None]}
    for name, value in values.items():
        expected = tuple(layers[name].embeddings.shape)
        if np.shape(value) != expected:
            raise ValueError(f"params[{name!r}] has shape {np.shape(value)} but the model's "
                             f"{name} has {expected}; build the model with the same sizes")
        layers[name].embeddings.assign(np.asarray(value, dtype=layers[name].embeddings.dtype))
    layers["mf"].mu.assign(float(params["mu"]))


def keras_mf_get_params(model: Any) -> MFParams:
    """The parameters of a :func:`build_keras_mf` model as a NumPy dict (float64).

    Raises:
        ValueError: the model is not from :func:`build_keras_mf`.

    Explained in notebook 04.
    """
    layers = _keras_layers(model)

    def table(name: str) -> np.ndarray:
        return np.asarray(layers[name].embeddings.numpy(), dtype=np.float64)

    return {"mu": float(layers["mf"].mu.numpy()), "b_u": table("b_u")[:, 0],
            "b_i": table("b_i")[:, 0], "P": table("P"), "Q": table("Q")}
