"""Deep recommenders in Keras 3 for implicit feedback: NeuMF and a two-tower model.

Both follow the interface of :mod:`recsys_lib.models.base` and are trained for ranking:

* :class:`NeuMFRecommender` (He et al., 2017) scores one (user, item) pair at a time with a
  GMF branch (element-wise product of embeddings) and an MLP branch, trained with binary
  cross-entropy on observed pairs against sampled unseen items.
* :class:`TwoTowerRecommender` maps users and items separately to vectors on the unit sphere
  (the "user interest model" and the "item model"); a score is a dot product, so all item
  vectors can be computed once and indexed for fast retrieval. Trained with an in-batch
  softmax.

Both train through the course's one training loop (:mod:`recsys_lib.training`):
``fit(train, validation=val_table)`` validates NDCG@10 over the full catalogue every
``eval_every`` epochs, stops after ``patience`` validations without improvement and keeps
the best weights; ``history_`` holds one dict per epoch. Keras and TensorFlow are imported
with this module.

Explained in notebook 06.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
from keras import ops

from recsys_lib.checks import check_float, check_int, check_sizes
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.sampling import sample_negatives
from recsys_lib.training import KerasRecommender

#: Scores are computed in chunks of at most this many floats (bounds memory in ``_score``).
_CHUNK_FLOATS = 1 << 22


def _positive_pairs(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(user index, item index) of every non-zero of the CSR matrix, row by row."""
    users = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return users.astype(np.int32), matrix.indices.astype(np.int32)


def _embedding(n: int, dim: int, name: str, l2: float = 0.0) -> keras.layers.Embedding:
    """An embedding table; ``l2`` penalises the rows used in a batch (mean squared norm)."""
    return keras.layers.Embedding(
        n, dim, name=name, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05),
        activity_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None)


# ----------------------------------------------------------------------------- NeuMF
class NeuMFRecommender(KerasRecommender):
    """Neural Matrix Factorisation (He et al., 2017): GMF and MLP branches fused in one logit.

    ``logit(u, i) = h . [p_u * q_i ; MLP([p'_u ; q'_i])] + b``: the GMF branch is matrix
    factorisation with a learned weight per factor, the MLP branch can model interactions
    a dot product cannot. Each epoch pairs every observed (user, item) with ``n_negatives``
    freshly sampled unseen items (label 0) and minimises binary cross-entropy.

    Args:
        gmf_dim: size of the GMF user and item embeddings.
        mlp_dim: size of the (separate) MLP user and item embeddings.
        mlp_layers: sizes of the ReLU layers of the MLP branch (the paper halves each time).
        n_negatives: sampled unseen items per observed pair (the paper found 3 to 6 best).
        epochs: passes over the observed pairs.
        batch_size: training examples per gradient step (positives and negatives); also
            the number of users scored at once by ``recommend``.
        learning_rate: Adam step size.
        l2: penalty on the embeddings used in each batch (mean squared norm per example).
        patience: with ``validation``, stop after this many validations in a row without
            a better NDCG@10 (None: train all ``epochs``, keep the best weights).
        eval_every: with ``fit(..., validation=...)``, epochs between validations.
        progress: print one line per epoch.
        seed: seeds Keras (weights) and the negative sampler; same seed, same model on CPU.

    Raises:
        ArgumentError: a size, count or rate that is not positive (``l2`` may be 0).

    Explained in notebook 06.
    """

    name = "neumf"

    def __init__(self, gmf_dim: int = 32, mlp_dim: int = 32,
                 mlp_layers: Sequence[int] = (64, 32, 16), n_negatives: int = 4,
                 l2: float = 0.0, epochs: int = 10, batch_size: int = 1024,
                 learning_rate: float = 2e-3, patience: int | None = None, eval_every: int = 1,
                 progress: bool = True, seed: int = DEFAULT_SEED) -> None:
        super().__init__(epochs, batch_size, learning_rate, patience, eval_every, progress,
                         seed)
        self.gmf_dim = check_int("gmf_dim", gmf_dim)
        self.mlp_dim = check_int("mlp_dim", mlp_dim)
        self.mlp_layers = check_sizes("mlp_layers", mlp_layers)
        self.n_negatives = check_int("n_negatives", n_negatives)
        self.l2 = check_float("l2", l2, strict=False)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        keras.utils.set_random_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.model_ = self._build(matrix)
        self._train(self.model_, lambda epoch: self._epoch_data(matrix, rng))

    def _build(self, matrix: sp.csr_matrix) -> keras.Model:
        n_users, n_items = matrix.shape
        user = keras.Input(shape=(), dtype="int32", name="user")
        item = keras.Input(shape=(), dtype="int32", name="item")
        gmf = keras.layers.Multiply(name="gmf")([
            _embedding(n_users, self.gmf_dim, "gmf_user", self.l2)(user),
            _embedding(n_items, self.gmf_dim, "gmf_item", self.l2)(item)])
        hidden = keras.layers.Concatenate(name="mlp_input")([
            _embedding(n_users, self.mlp_dim, "mlp_user", self.l2)(user),
            _embedding(n_items, self.mlp_dim, "mlp_item", self.l2)(item)])
        for k, size in enumerate(self.mlp_layers):
            hidden = keras.layers.Dense(size, activation="relu", name=f"mlp_{k}")(hidden)
        fused = keras.layers.Concatenate(name="fused")([gmf, hidden])
        logit = keras.layers.Dense(1, name="logit")(fused)
        model = keras.Model({"user": user, "item": item}, logit, name="neumf")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        return model

    def _epoch_data(self, matrix: sp.csr_matrix, rng: np.random.Generator) -> tuple:
        """Every observed pair (label 1) and ``n_negatives`` unseen items each (label 0).

        Users who have seen the whole catalogue have no negatives; their positives still
        count.
        """
        pos_users, pos_items = _positive_pairs(matrix)
        has_room = np.diff(matrix.indptr)[pos_users] < matrix.shape[1]
        neg_items = sample_negatives(matrix, pos_users[has_room], rng,
                                     n=self.n_negatives).ravel().astype(np.int32)
        neg_users = np.repeat(pos_users[has_room], self.n_negatives)
        users = np.concatenate([pos_users, neg_users])
        items = np.concatenate([pos_items, neg_items])
        labels = np.concatenate([np.ones(len(pos_users)), np.zeros(len(neg_users))])
        order = rng.permutation(len(users))
        x = {"user": users[order], "item": items[order]}
        return x, labels[order].astype(np.float32)[:, None]

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        """Logits of every item, computed from the weights without building the pair grid.

        The GMF part is one matrix product; the first MLP layer splits into a user part and
        an item part (``W [p; q] = W_u p + W_i q``), so only the later layers run on the
        (users x items) grid, in chunks.
        """
        w = {layer.name: layer.get_weights() for layer in self.model_.layers}
        out_kernel, out_bias = w["logit"]
        h_gmf, h_mlp = out_kernel[:self.gmf_dim, 0], out_kernel[self.gmf_dim:, 0]
        item_gmf, item_mlp = w["gmf_item"][0], w["mlp_item"][0]
        scores = (w["gmf_user"][0][user_idx] * h_gmf) @ item_gmf.T + out_bias[0]
        kernel, bias = w["mlp_0"]
        user_part = w["mlp_user"][0][user_idx] @ kernel[:self.mlp_dim] + bias
        item_part = item_mlp @ kernel[self.mlp_dim:]
        n_items = len(item_part)
        step = max(1, _CHUNK_FLOATS // (n_items * max(self.mlp_layers)))
        for start in range(0, len(user_idx), step):
            hidden = np.maximum(user_part[start:start + step, None, :] + item_part, 0)
            hidden = hidden.reshape(-1, hidden.shape[-1])
            for k in range(1, len(self.mlp_layers)):
                kernel, bias = w[f"mlp_{k}"]
                hidden = np.maximum(hidden @ kernel + bias, 0)
            scores[start:start + step] += (hidden @ h_mlp).reshape(-1, n_items)
        return scores


# ----------------------------------------------------------------------------- two towers
class _MaskedMean(keras.layers.Layer):
    """Mean of embedded ids over the positions whose id is not 0 (0 = padding)."""

    def call(self, embedded, ids):
        mask = ops.cast(ops.not_equal(ids, 0), embedded.dtype)[..., None]
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)
        return ops.sum(embedded * mask, axis=1) / count


class _InBatchLogits(keras.layers.Layer):
    """Logits (B, B) of every user in the batch against every item in the batch.

    ``logits[i, j] = u_i . v_j / temperature - logq_j``; the positives are on the diagonal.
    Off-diagonal copies of the row's own item (two users in the batch with the same item)
    are masked out: they are not negatives.
    """

    def __init__(self, temperature: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, user_vectors, item_vectors, items, logq):
        logits = ops.matmul(user_vectors, ops.transpose(item_vectors)) / self.temperature
        logits = logits - logq[None, :]
        same = ops.equal(items[:, None], items[None, :])
        off_diagonal = ops.logical_not(ops.eye(ops.shape(items)[0], dtype="bool"))
        return ops.where(ops.logical_and(same, off_diagonal), -1e9, logits)


def in_batch_softmax_loss(y_true, logits):
    """Softmax cross-entropy of each row of ``logits`` with its diagonal entry as the label.

    ``y_true`` is ignored (Keras needs a target; the labels are the positions in the batch).

    Explained in notebook 06.
    """
    labels = ops.arange(ops.shape(logits)[0])
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def _tower(inputs: keras.KerasTensor, hidden: tuple[int, ...], output_dim: int,
           prefix: str) -> keras.KerasTensor:
    """ReLU layers, a linear projection to ``output_dim``, then L2 normalisation."""
    for k, size in enumerate(hidden):
        inputs = keras.layers.Dense(size, activation="relu", name=f"{prefix}_{k}")(inputs)
    inputs = keras.layers.Dense(output_dim, name=f"{prefix}_out")(inputs)
    return keras.layers.UnitNormalization(name=f"{prefix}_norm")(inputs)


class TwoTowerRecommender(KerasRecommender):
    """Two towers: user and item mapped separately to unit vectors; score = dot product.

    User tower ("user interest model"): the user-id embedding, plus (``use_history``) the
    mean embedding of the user's ``max_history`` most recent training items, through a small
    MLP. Item tower ("item model"): the item-id embedding, plus (``item_features``) a
    projection of the item's features, through a small MLP. Both end in an L2 normalisation,
    so ``u . v`` is a cosine; the logits are ``u . v / temperature``.

    Training uses an in-batch softmax: for each (user, item) pair of a batch the other items
    of the batch are the negatives. Popular items appear in more batches, so they are
    pushed down more often than a uniform sampler would push them; ``logq_correction``
    subtracts log(item frequency) from each logit during training to undo this bias
    (Yi et al., 2019). During training the target item is removed from the user's history,
    so the model cannot learn to just recognise an item it is shown.

    Args:
        embedding_dim: size of the id (and history) embeddings.
        hidden: sizes of the ReLU layers of each tower (may be empty).
        output_dim: size of the final user and item vectors.
        temperature: divides the cosine similarities; small values sharpen the softmax.
        use_history: add the mean embedding of the user's recent items to the user tower.
            Meant for users with few interactions, whose id embedding is barely trained; off
            by default because on ml-100k (every user has 20+ ratings) it did not help and
            made training about twice as slow.
        max_history: how many of the user's most recent training items make up the history
            (without a ``timestamp`` column, the last ones in table order).
        logq_correction: subtract log(item frequency) from the in-batch logits. On by
            default: on ml-100k it doubled validation HR@10 (about 0.06 -> 0.14).
        item_features: optional DataFrame indexed by item_id with numeric columns, e.g.
            multi-hot genres: ``items.set_index("item_id")["genres"].str.get_dummies("|")``.
            Items missing from it get zeros.
        epochs, batch_size, learning_rate, patience, eval_every, progress, seed: as in
            :class:`NeuMFRecommender`; ``batch_size`` is also the number of candidates
            in each softmax (1 positive + batch_size - 1 negatives).

    Raises:
        ArgumentError: a size, count or rate that is not positive.
        ValueError: bad ``item_features``.

    Explained in notebook 06.
    """

    name = "two_tower"

    def __init__(self, embedding_dim: int = 64, hidden: Sequence[int] = (128,),
                 output_dim: int = 64, temperature: float = 0.1, use_history: bool = False,
                 max_history: int = 20, logq_correction: bool = True,
                 item_features: pd.DataFrame | None = None, epochs: int = 10,
                 batch_size: int = 512, learning_rate: float = 2e-3,
                 patience: int | None = None, eval_every: int = 1, progress: bool = True,
                 seed: int = DEFAULT_SEED) -> None:
        super().__init__(epochs, batch_size, learning_rate, patience, eval_every, progress,
                         seed)
        self.embedding_dim = check_int("embedding_dim", embedding_dim)
        self.hidden = check_sizes("hidden", hidden, allow_empty=True)
        self.output_dim = check_int("output_dim", output_dim)
        self.temperature = check_float("temperature", temperature)
        self.use_history = bool(use_history)
        self.max_history = check_int("max_history", max_history)
        self.logq_correction = bool(logq_correction)
        self.item_features = _check_features(item_features)

    # ----------------------------------------------------------------- model
    def _fit(self, matrix: sp.csr_matrix) -> None:
        keras.utils.set_random_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.model_ = self._build(matrix)
        self._train(self.model_, lambda epoch: self._epoch_data(matrix, rng))

    def _build(self, matrix: sp.csr_matrix) -> keras.Model:
        n_users, n_items = matrix.shape
        self.history_items_ = self._recent_items() if self.use_history else None
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.log_frequency_ = np.log(np.maximum(counts, 1) / counts.sum()).astype(np.float32)
        self.user_tower_ = self._build_user_tower(n_users, n_items)
        self.item_tower_ = self._build_item_tower(n_items)
        user = keras.Input(shape=(), dtype="int32", name="user")
        item = keras.Input(shape=(), dtype="int32", name="item")
        logq = keras.Input(shape=(), dtype="float32", name="logq")
        user_inputs = {"user": user}
        if self.use_history:
            user_inputs["history"] = keras.Input(shape=(self.max_history,), dtype="int32",
                                                 name="history")
        logits = _InBatchLogits(self.temperature, name="in_batch_logits")(
            self.user_tower_(user_inputs), self.item_tower_({"item": item}), item, logq)
        model = keras.Model({**user_inputs, "item": item, "logq": logq}, logits,
                            name="two_tower")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
                      loss=in_batch_softmax_loss)
        return model

    def _build_user_tower(self, n_users: int, n_items: int) -> keras.Model:
        user = keras.Input(shape=(), dtype="int32", name="user")
        inputs, parts = {"user": user}, [_embedding(n_users, self.embedding_dim, "user_id")(user)]
        if self.use_history:
            history = keras.Input(shape=(self.max_history,), dtype="int32", name="history")
            embedded = _embedding(n_items + 1, self.embedding_dim, "history_items")(history)
            inputs["history"] = history
            parts.append(_MaskedMean(name="history_mean")(embedded, history))
        joined = parts[0] if len(parts) == 1 else keras.layers.Concatenate()(parts)
        return keras.Model(inputs, _tower(joined, self.hidden, self.output_dim, "user"),
                           name="user_tower")

    def _build_item_tower(self, n_items: int) -> keras.Model:
        item = keras.Input(shape=(), dtype="int32", name="item")
        parts = [_embedding(n_items, self.embedding_dim, "item_id")(item)]
        if self.item_features is not None:
            table = self.item_features.reindex(self.items_.ids_).fillna(0.0)
            features = keras.layers.Embedding(
                n_items, table.shape[1], weights=table.to_numpy(np.float32), trainable=False,
                name="item_features")(item)
            parts.append(keras.layers.Dense(self.embedding_dim, name="features_proj")(features))
        joined = parts[0] if len(parts) == 1 else keras.layers.Concatenate()(parts)
        return keras.Model({"item": item}, _tower(joined, self.hidden, self.output_dim, "item"),
                           name="item_tower")

    def _recent_items(self) -> np.ndarray:
        """(n_users, max_history) item indices + 1 of each user's latest items; 0 = padding.

        Without a ``timestamp`` column the table's row order stands in for time.
        """
        table = self.train_
        users = self.users_.transform(table["user_id"])
        items = self.items_.transform(table["item_id"])
        times = table["timestamp"].to_numpy() if "timestamp" in table else np.zeros(len(table))
        order = np.lexsort((np.arange(len(table)), times, users))
        pairs = pd.DataFrame({"u": users[order], "i": items[order]})
        pairs = pairs.drop_duplicates(keep="last")
        pairs = pairs[pairs.groupby("u").cumcount(ascending=False) < self.max_history]
        out = np.zeros((len(self.users_), self.max_history), dtype=np.int32)
        out[pairs["u"].to_numpy(), pairs.groupby("u").cumcount().to_numpy()] = pairs["i"] + 1
        return out

    # ----------------------------------------------------------------- training data
    def _epoch_data(self, matrix: sp.csr_matrix, rng: np.random.Generator) -> tuple:
        users, items = _positive_pairs(matrix)
        order = rng.permutation(len(users))
        users, items = users[order], items[order]
        logq = self.log_frequency_[items] if self.logq_correction else np.zeros(len(items))
        x = {"user": users, "item": items, "logq": logq.astype(np.float32)}
        if self.use_history:
            history = self.history_items_[users]
            history[history == (items[:, None] + 1)] = 0  # the target is not history
            x["history"] = history
        return x, np.zeros(len(users), dtype=np.float32)

    # ----------------------------------------------------------------- scoring
    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """Unit vectors (len(user_idx), output_dim) of users given by index (0..n_users-1)."""
        inputs = {"user": np.asarray(user_idx, dtype=np.int32)}
        if self.use_history:
            inputs["history"] = self.history_items_[user_idx]
        return ops.convert_to_numpy(self.user_tower_(inputs, training=False))

    def item_vectors(self) -> np.ndarray:
        """Unit vectors (n_items, output_dim) of the catalogue, in ``items_.ids_`` order.

        Compute them once and index them (e.g. for approximate nearest neighbours).
        """
        items = np.arange(len(self.items_), dtype=np.int32)
        return ops.convert_to_numpy(self.item_tower_({"item": items}, training=False))

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_vectors(user_idx) @ self.item_vectors().T


def _check_features(features: pd.DataFrame | None) -> pd.DataFrame | None:
    if features is None:
        return None
    if not isinstance(features, pd.DataFrame) or features.shape[1] == 0:
        raise ValueError("item_features must be a DataFrame indexed by item_id with at least "
                         "one numeric column, e.g. items.set_index('item_id')['genres']"
                         ".str.get_dummies('|')")
    if not features.index.is_unique:
        raise ValueError("item_features has a duplicated item_id in its index")
    try:
        values = features.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("item_features must hold numbers only (e.g. 0/1 genre columns)"
                         ) from None
    if not np.isfinite(values).all():
        raise ValueError("item_features has missing or infinite values")
    return features.astype(np.float32)
