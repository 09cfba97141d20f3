"""A SASRec-style Transformer recommender trained for next-item prediction (notebook 10).

Model: causal self-attention blocks over the user's item sequence (learned positions,
pre-LN, dropout), a final layer norm, and scores for every catalogue item from the same item
embedding matrix used at the input (shared / tied embeddings).

Training: next-item prediction at every position of every training sequence with a *full
softmax cross-entropy* over the catalogue (Klenitskiy & Vasilev, 2023, found it much stronger
than the one-negative binary loss of the original SASRec paper). Histories are truncated from
the left, keeping the most recent items; padding never enters the loss, the attention or the
read-out (the last real position is always the last position, as sequences are left-padded).
Early stopping watches validation NDCG@10 over the full catalogue and restores the best
weights.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
from keras import ops

from recsys_lib.metrics import evaluate_ranking, relevant_items
from recsys_lib.models.base import Recommender
from recsys_lib.models.transformer import CausalTransformerBlock, ItemPositionEmbedding
from recsys_lib.preprocessing import IdEncoder
from recsys_lib.splits import order_by_user_time


@keras.saving.register_keras_serializable(package="recsys_lib")
class SASRec(keras.Model):
    """Maps left-padded item sequences (batch, T) to logits over items (batch, T, n_items + 1).

    Column 0 of the logits (padding) is forced to a large negative number, so the model never
    predicts padding. ``item_ids`` (the original id of index 1..n) is stored in the config so a
    saved model can turn its outputs back into ids.
    """

    def __init__(self, n_items: int, max_len: int = 50, d_model: int = 64, num_heads: int = 2,
                 num_blocks: int = 2, d_ff: int | None = None, dropout: float = 0.2,
                 item_ids: list | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.max_len, self.d_model = n_items, max_len, d_model
        self.num_heads, self.num_blocks = num_heads, num_blocks
        self.d_ff = d_ff or 4 * d_model
        self.dropout_rate = dropout
        self.item_ids = list(item_ids) if item_ids is not None else list(range(1, n_items + 1))
        self.embed = ItemPositionEmbedding(n_items, max_len, d_model, dropout, name="embed")
        self.blocks = [CausalTransformerBlock(d_model, num_heads, self.d_ff, dropout,
                                              name=f"block_{i}") for i in range(num_blocks)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def build(self, input_shape) -> None:
        self.embed.build(input_shape)
        shape = (*input_shape, self.d_model)
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.built = True

    def hidden(self, sequences, training=None, return_attention=False):
        """Hidden states (batch, T, d_model); optionally each block's attention weights."""
        real = ops.not_equal(sequences, 0)
        x = self.embed(sequences, training=training)
        maps = []
        for block in self.blocks:
            x, scores = block(x, real, training=training, return_attention_scores=True)
            maps.append(scores)
        x = self.final_norm(x)
        return (x, maps) if return_attention else x

    def logits(self, hidden):
        """Scores of every item index for each hidden state (tied item embeddings)."""
        table = self.embed.item_embedding.embeddings  # (n_items + 1, d)
        scores = ops.matmul(hidden, ops.transpose(table))
        pad = ops.one_hot(ops.zeros((), "int32"), self.n_items + 1) * -1e9
        return scores + ops.cast(pad, scores.dtype)

    def call(self, sequences, training=None):
        return self.logits(self.hidden(sequences, training=training))

    def get_config(self) -> dict:
        return {"n_items": self.n_items, "max_len": self.max_len, "d_model": self.d_model,
                "num_heads": self.num_heads, "num_blocks": self.num_blocks, "d_ff": self.d_ff,
                "dropout": self.dropout_rate, "item_ids": [int(i) for i in self.item_ids],
                "name": self.name}


def left_pad(sequences: list[np.ndarray], max_len: int) -> np.ndarray:
    """Keep the last ``max_len`` entries of each sequence and pad with 0 on the left.

    Returns:
        (len(sequences), max_len) int32 array.
    """
    out = np.zeros((len(sequences), max_len), dtype=np.int32)
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq)[-max_len:]
        if len(seq):
            out[row, max_len - len(seq):] = seq
    return out


def training_windows(sequences: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets for every position: input = s[:-1], target = s[1:].

    A history longer than ``max_len + 1`` is cut into several windows from the end, so no
    interaction is wasted; the most recent window comes first.

    Returns:
        ``(inputs, targets)``, both (n_windows, max_len) int32, 0 = padding (no loss).
    """
    inputs, targets = [], []
    for seq in sequences:
        seq = np.asarray(seq)
        end = len(seq)
        while end >= 2:
            window = seq[max(0, end - max_len - 1):end]
            inputs.append(window[:-1])
            targets.append(window[1:])
            end -= max_len
    return left_pad(inputs, max_len), left_pad(targets, max_len)


class _Silent(list):
    """A stand-in for a tqdm bar when progress is off."""

    def set_postfix(self, *args, **kwargs) -> None:
        pass


class SASRecRecommender(Recommender):
    """Next-item Transformer recommender behind the course's recommender interface.

    Args:
        max_len: longest history the model reads (older items are dropped).
        d_model, num_heads, num_blocks, d_ff, dropout: model size (see :class:`SASRec`).
        epochs: maximum epochs; early stopping usually ends sooner.
        batch_size, learning_rate: Adam settings.
        patience: epochs without a better validation NDCG@10 before stopping.
        eval_every: validate every this many epochs.
        seed: seeds Keras, NumPy and Python for a reproducible run on CPU.
        progress: show a tqdm bar with the loss and validation NDCG per epoch.
        jit_compile: compile the training step with XLA (about twice as fast on CPU).
    """

    name = "sasrec"

    def __init__(self, max_len: int = 50, d_model: int = 64, num_heads: int = 2,
                 num_blocks: int = 2, d_ff: int | None = None, dropout: float = 0.2,
                 epochs: int = 200, batch_size: int = 128, learning_rate: float = 1e-3,
                 patience: int = 5, eval_every: int = 1, seed: int = 42,
                 progress: bool = True, jit_compile: bool = True) -> None:
        for label, value in (("max_len", max_len), ("d_model", d_model), ("epochs", epochs),
                             ("batch_size", batch_size), ("num_heads", num_heads),
                             ("num_blocks", num_blocks), ("patience", patience)):
            if value < 1:
                raise ValueError(f"{label} must be >= 1, got {value}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.max_len, self.d_model, self.num_heads = max_len, d_model, num_heads
        self.num_blocks, self.d_ff, self.dropout = num_blocks, d_ff, dropout
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.eval_every, self.seed = patience, eval_every, seed
        self.progress, self.jit_compile = progress, jit_compile
        self.history_: list[dict] = []

    # ------------------------------------------------------------------ fitting
    def fit(self, train: pd.DataFrame, items=None,
            validation: pd.DataFrame | None = None) -> SASRecRecommender:
        """Train on ``train`` (needs ``timestamp``); early-stop on ``validation`` if given.

        Args:
            train: interactions with ``user_id, item_id, timestamp``.
            items: extra catalogue item ids (never seen in training).
            validation: held-out next interactions of some training users (e.g.
                ``leave_last_out(...).val``), scored with full-ranking NDCG@10.
        """
        if "timestamp" not in train:
            raise ValueError("SASRec needs a timestamp column to order each user's history")
        self._validation = validation
        return super().fit(train, items)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        keras.utils.set_random_seed(self.seed)
        self.histories_ = self._histories(self.train_)
        inputs, targets = training_windows(list(self.histories_.values()), self.max_len)
        self.model_ = SASRec(len(self.items_), self.max_len, self.d_model, self.num_heads,
                             self.num_blocks, self.d_ff, self.dropout,
                             item_ids=self.items_.ids_.tolist())
        self.model_.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=self.jit_compile)
        self.model_.build((None, self.max_len))
        self._train(inputs, targets)

    def _histories(self, table: pd.DataFrame) -> dict:
        """user_id -> array of item indices (1-based), oldest first."""
        ordered = order_by_user_time(table)
        idx = self.items_.transform(ordered["item_id"]) + 1
        users = ordered["user_id"].to_numpy()
        cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
        return {int(chunk_users[0]): chunk for chunk_users, chunk in
                zip(np.split(users, cuts), np.split(idx, cuts), strict=True)}

    def _train(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        weights = (targets > 0).astype("float32")  # padding targets do not count
        relevant = relevant_items(self._validation) if self._validation is not None else None
        best, best_weights, waited = -math.inf, None, 0
        if self.progress:  # imported only when used: tqdm.auto warns without ipywidgets
            from tqdm.auto import tqdm

            bar = tqdm(range(1, self.epochs + 1), desc="SASRec")
        else:
            bar = _Silent(range(1, self.epochs + 1))
        for epoch in bar:
            start = time.perf_counter()
            fit = self.model_.fit(inputs, targets, sample_weight=weights, epochs=1,
                                  batch_size=self.batch_size, shuffle=True, verbose=0)
            record = {"epoch": epoch, "loss": float(fit.history["loss"][-1]),
                      "seconds": round(time.perf_counter() - start, 2)}
            if relevant is not None and epoch % self.eval_every == 0:
                recs = self.recommend(list(relevant), k=10)
                record["val_ndcg@10"] = evaluate_ranking(recs, relevant, 10, ("ndcg",))[
                    "ndcg@10"]
                if record["val_ndcg@10"] > best:
                    best, best_weights, waited = record["val_ndcg@10"], \
                        self.model_.get_weights(), 0
                else:
                    waited += 1
            self.history_.append(record)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items()
                             if k in ("loss", "val_ndcg@10")})
            if waited >= self.patience:
                break
        if best_weights is not None:
            self.model_.set_weights(best_weights)
            self.best_epoch_ = max(self.history_, key=lambda r: r.get("val_ndcg@10", -1))[
                "epoch"]

    def add_history(self, interactions: pd.DataFrame,
                    unknown_items: str = "error") -> SASRecRecommender:
        """Append later interactions of known users to their histories, without retraining.

        A sequence model reads the history at prediction time, so the newest interactions
        (e.g. the validation item before predicting the test item) are used as input and are
        excluded from later recommendations as seen items.

        Args:
            interactions: rows with ``user_id, item_id, timestamp`` of training users.
            unknown_items: ``"error"`` raises for items the model has no embedding for;
                ``"skip"`` leaves them out and counts them in ``skipped_history_items_``.

        Raises:
            ValueError: unknown users, or unknown items with ``unknown_items="error"``.
        """
        if unknown_items not in ("error", "skip"):
            raise ValueError(f"unknown_items must be 'error' or 'skip', got {unknown_items!r}")
        ordered = order_by_user_time(interactions)
        known = ordered["item_id"].isin(self.items_.ids_)
        if unknown_items == "error" and not known.all():
            self.items_.transform(ordered["item_id"])  # raises, naming the unknown ids
        self.skipped_history_items_ = int((~known).sum())
        ordered = ordered[known]
        users = self.users_.transform(ordered["user_id"])
        items = self.items_.transform(ordered["item_id"])
        for user, item in zip(ordered["user_id"].to_numpy(), items, strict=True):
            self.histories_[int(user)] = np.append(self.histories_[int(user)], item + 1)
        extra = sp.csr_matrix((np.ones(len(items)), (users, items)), shape=self.matrix_.shape)
        self.matrix_ = (self.matrix_ + extra).tocsr()
        self.matrix_.data[:] = 1.0
        return self

    # ------------------------------------------------------------------ scoring
    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        users = self.users_.inverse_transform(user_idx)
        return self.score_histories([self.histories_[int(u)] for u in users])

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """Scores over the catalogue (columns in ``items_.ids_`` order) for item-index histories.

        An empty history gets the scores of an all-padding input; prefer a popularity
        fallback for such users (notebook 12).
        """
        batch = left_pad(histories, self.max_len)
        out = []
        for start in range(0, len(batch), 256):
            hidden = self.model_.hidden(batch[start:start + 256], training=False)
            logits = self.model_.logits(hidden[:, -1, :])  # last position = most recent item
            out.append(ops.convert_to_numpy(logits)[:, 1:])
        return np.concatenate(out) if out else np.zeros((0, len(self.items_)))

    def recommend_for_history(self, item_ids: list, k: int = 10,
                              exclude_seen: bool = True) -> list:
        """Top-k item ids after a history of item ids (oldest first), e.g. a new session.

        Unknown item ids raise ValueError; pass only items of the training catalogue.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        history = self.items_.transform(item_ids) + 1
        scores = self.score_histories([history])[0]
        if exclude_seen:
            scores[history - 1] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return self.items_.inverse_transform(top[np.isfinite(scores[top])]).tolist()

    # ------------------------------------------------------------------ saving
    def save(self, path: str) -> None:
        """Save the Keras model (weights, config, item ids) in the ``.keras`` format."""
        if not str(path).endswith(".keras"):
            raise ValueError(f"use a path ending in .keras, got {path}")
        self.model_.save(path)

    @classmethod
    def load(cls, path: str) -> SASRecRecommender:
        """Load a model saved with :meth:`save`; recommend with :meth:`recommend_for_history`."""
        model = keras.saving.load_model(path)
        rec = cls(max_len=model.max_len, d_model=model.d_model, num_heads=model.num_heads,
                  num_blocks=model.num_blocks, d_ff=model.d_ff, dropout=model.dropout_rate,
                  progress=False)
        rec.model_ = model
        rec.items_ = IdEncoder().fit(model.item_ids)
        return rec
