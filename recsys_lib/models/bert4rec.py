"""BERT4Rec: a bidirectional Transformer trained by masked item modelling (notebook 11).

Model (Sun et al., 2019): the item + position embedding of notebook 10, blocks of
*bidirectional* self-attention (the course's Transformer block with ``causal=False``), a
final layer norm, and scores for every catalogue item from the same item embedding matrix
used at the input (tied embeddings, as in SASRec). The embedding has one extra row, the
[MASK] token ``n_items + 1``; it is never recommended.

Training (the cloze task): every epoch each training window is corrupted afresh by
:func:`recsys_lib.models.transformer.cloze_mask` (a share ``mask_rate`` of its items is
chosen; 80% of those become [MASK], 10% a random item, 10% stay) and the model predicts the
original item at the chosen positions only, with a full softmax cross-entropy over the
catalogue. A share ``last_item_rate`` of the windows instead has only its last item masked,
which is exactly the prediction task (BERT4Rec's paper adds such samples). Early stopping
watches validation NDCG@10 over the full catalogue (:mod:`recsys_lib.training`).

Prediction: the [MASK] token is appended after the user's history (the oldest items are
dropped to make room), and the scores at that last position rank the catalogue.

Pre-training and fine-tuning: ``pretrained=`` starts a fit from the weights of another
BERT4Rec model of the same size and catalogue (notebook 11 pre-trains on one group of users
and fine-tunes on another).
"""

from __future__ import annotations

import keras
import numpy as np

from recsys_lib.checks import check_float, check_int
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.models.sasrec import (
    SequenceRecommender,
    left_pad,
    load_model_file,
    plain_ids,
    tied_logits,
)
from recsys_lib.models.transformer import CausalTransformerBlock, ItemPositionEmbedding, cloze_mask
from recsys_lib.preprocessing import IdEncoder


@keras.saving.register_keras_serializable(package="recsys_lib")
class BERT4Rec(keras.Model):
    """Maps left-padded item sequences (batch, T), which may hold the [MASK] token
    ``n_items + 1``, to logits over items (batch, T, n_items + 1).

    Column 0 of the logits (padding) is forced to a large negative number and the [MASK]
    token has no column, so the model predicts real items only. ``item_ids`` (the original id
    of index 1..n) is stored in the config so a saved model can be used on its own.

    Args:
        n_items: catalogue size (indices 1..n_items; 0 is padding, n_items + 1 is [MASK]).
        max_len: longest sequence, the [MASK] slot included.
        d_model, num_heads, num_blocks, d_ff, dropout: as in
            :class:`~recsys_lib.models.sasrec.SASRec`.
        item_ids: original id of each index 1..n_items.

    Explained in notebook 11.
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
        # n_items + 1 "items" for the embedding: the catalogue and the [MASK] token
        self.embed = ItemPositionEmbedding(n_items + 1, max_len, d_model, dropout, name="embed")
        self.blocks = [CausalTransformerBlock(d_model, num_heads, self.d_ff, dropout,
                                              causal=False, name=f"block_{i}")
                       for i in range(num_blocks)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    @property
    def mask_token(self) -> int:
        """The index of the [MASK] token, ``n_items + 1``."""
        return self.n_items + 1

    def build(self, input_shape) -> None:
        self.embed.build(input_shape)
        shape = (*input_shape, self.d_model)
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.built = True

    def hidden(self, sequences, training=None, return_attention=False):
        """Hidden states (batch, T, d_model); optionally each block's attention weights."""
        real = keras.ops.not_equal(sequences, 0)
        x = self.embed(sequences, training=training)
        maps = []
        for block in self.blocks:
            if return_attention:
                x, scores = block(x, real, training=training, return_attention_scores=True)
                maps.append(scores)
            else:
                x = block(x, real, training=training)
        x = self.final_norm(x)
        return (x, maps) if return_attention else x

    def logits(self, hidden):
        """Scores of every item index (not [MASK]) for each hidden state, tied embeddings."""
        table = self.embed.item_embedding.embeddings
        return tied_logits(hidden, table[: self.n_items + 1], self.n_items)

    def call(self, sequences, training=None):
        return self.logits(self.hidden(sequences, training=training))

    def get_config(self) -> dict:
        return {"n_items": self.n_items, "max_len": self.max_len, "d_model": self.d_model,
                "num_heads": self.num_heads, "num_blocks": self.num_blocks, "d_ff": self.d_ff,
                "dropout": self.dropout_rate, "item_ids": plain_ids(self.item_ids),
                "name": self.name}


@keras.saving.register_keras_serializable(package="recsys_lib")
class MaskedPositionsTrainer(keras.Model):
    """Training wrapper of a :class:`BERT4Rec`: logits at the chosen positions only.

    Input ``(sequences, positions)``: (batch, T) corrupted sequences and (batch, M) indices
    of the positions to predict. Output (batch, M, n_items + 1) logits. Only about
    ``mask_rate`` of the positions carry a loss, so scoring the catalogue at those alone
    saves most of the full softmax's cost; the weights are the wrapped model's own.

    Explained in notebook 11.
    """

    def __init__(self, bert: BERT4Rec, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bert = bert

    def call(self, inputs, training=None):
        sequences, positions = inputs
        hidden = self.bert.hidden(sequences, training=training)
        picked = keras.ops.take_along_axis(hidden, keras.ops.expand_dims(positions, -1), axis=1)
        return self.bert.logits(picked)


def target_positions(targets: np.ndarray, slots: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The positions of each row's targets, padded to ``slots`` columns, and their targets.

    A row with more than ``slots`` targets keeps a random ``slots`` of them (the others stay
    corrupted in the input but carry no loss); padded slots point at position 0 with target 0.

    Returns:
        ``(positions, picked_targets)``, both (batch, slots) int32.

    Explained in notebook 11.
    """
    keys = np.where(targets > 0, rng.random(targets.shape), 2.0)  # targets first, in random order
    positions = np.argsort(keys, axis=1, kind="stable")[:, :slots]
    picked = np.take_along_axis(targets, positions, axis=1)
    positions = np.where(picked > 0, positions, 0)
    return positions.astype(np.int32), picked.astype(np.int32)


def cloze_windows(sequences: list[np.ndarray], max_len: int) -> np.ndarray:
    """Cut each history into windows of at most ``max_len`` items, from the most recent end.

    A history of 120 items with ``max_len`` 50 gives the windows [70:120], [20:70] and
    [0:20]; every item is in exactly one window. Windows are left-padded with 0.

    Args:
        sequences: item-index histories, oldest first.
        max_len: window length (>= 1).

    Returns:
        (n_windows, max_len) int32 array.

    Explained in notebook 11.
    """
    max_len = check_int("max_len", max_len)
    windows = []
    for seq in sequences:
        seq = np.asarray(seq)
        for end in range(len(seq), 0, -max_len):
            windows.append(seq[max(0, end - max_len):end])
    return left_pad(windows, max_len)


def mask_last_item(windows: np.ndarray, mask_token: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs with only the last item of each window replaced by [MASK], and its targets.

    Returns:
        ``(inputs, targets)``: targets hold the original last item, 0 elsewhere.

    Explained in notebook 11.
    """
    inputs = np.array(windows, dtype=np.int32, copy=True)
    targets = np.zeros_like(inputs)
    targets[:, -1] = inputs[:, -1]
    inputs[:, -1] = np.where(inputs[:, -1] > 0, mask_token, 0)
    return inputs, targets


class BERT4RecRecommender(SequenceRecommender):
    """Masked-item Transformer recommender (BERT4Rec) behind the course's interface.

    Args:
        max_len: longest sequence the model reads, the appended [MASK] included.
        d_model, num_heads, num_blocks, d_ff, dropout: model size (see :class:`BERT4Rec`).
        mask_rate: share of each window's items to predict in the cloze task, in (0, 1].
        last_item_rate: share of windows that, each epoch, have only their last item masked
            (the prediction task itself), in [0, 1].
        epochs: maximum epochs; early stopping usually ends sooner.
        batch_size, learning_rate: Adam settings.
        patience: validations without a better validation NDCG@10 before stopping.
        eval_every: validate every this many epochs.
        progress: print one line per epoch (loss, validation NDCG@10 and HR@10, seconds).
        seed: seeds Keras, NumPy and Python, and the masks, for a reproducible run on CPU.
        jit_compile: compile the training step with XLA.
        pretrained: a :class:`BERT4Rec` model (or a ``.keras`` path) to start from instead of
            random weights; it must have the same sizes and the same catalogue (pass the
            full catalogue with ``fit(train, items=...)`` to both fits).

    Raises:
        ArgumentError: a size or count that is not a positive integer, a dropout outside
            [0, 1), a rate outside its range, a learning rate that is not positive.

    Explained in notebook 11.
    """

    name = "bert4rec"
    label = "BERT4Rec"

    def __init__(self, max_len: int = 50, d_model: int = 64, num_heads: int = 2,
                 num_blocks: int = 2, d_ff: int | None = None, dropout: float = 0.2,
                 mask_rate: float = 0.2, last_item_rate: float = 0.1, epochs: int = 200,
                 batch_size: int = 128, learning_rate: float = 1e-3, patience: int = 5,
                 eval_every: int = 1, progress: bool = True, seed: int = DEFAULT_SEED,
                 jit_compile: bool = True, pretrained=None) -> None:
        super().__init__(epochs, batch_size, learning_rate, patience, eval_every, progress,
                         seed)
        self.max_len = check_int("max_len", max_len, minimum=2)
        self.d_model = check_int("d_model", d_model)
        self.num_heads = check_int("num_heads", num_heads)
        self.num_blocks = check_int("num_blocks", num_blocks)
        self.d_ff = None if d_ff is None else check_int("d_ff", d_ff)
        self.dropout = check_float("dropout", dropout, strict=False, maximum=1.0)
        self.mask_rate = check_float("mask_rate", mask_rate, maximum=1.0, strict_maximum=False)
        self.last_item_rate = check_float("last_item_rate", last_item_rate, strict=False,
                                          maximum=1.0, strict_maximum=False)
        self.jit_compile = bool(jit_compile)
        self.pretrained = pretrained

    # ------------------------------------------------------------------ network
    def _build_model(self) -> BERT4Rec:
        model = BERT4Rec(len(self.items_), self.max_len, self.d_model, self.num_heads,
                         self.num_blocks, self.d_ff, self.dropout,
                         item_ids=self.items_.ids_.tolist())
        if self.pretrained is not None:
            model.build((None, self.max_len))
            model.set_weights(self._pretrained_model(model).get_weights())
        return model

    def _pretrained_model(self, fresh: BERT4Rec) -> BERT4Rec:
        """The ``pretrained`` model, checked to fit ``fresh`` (same sizes and catalogue)."""
        source = self.pretrained
        if not isinstance(source, BERT4Rec):
            source = load_model_file(source, BERT4Rec, "BERT4RecRecommender")
        mine, theirs = fresh.get_config(), source.get_config()
        for key in ("max_len", "d_model", "num_heads", "num_blocks", "d_ff"):
            if mine[key] != theirs[key]:
                raise ValueError(f"the pretrained model has {key}={theirs[key]}, this one "
                                 f"{mine[key]}; fine-tune with the pre-training sizes")
        if mine["item_ids"] != theirs["item_ids"]:
            raise ValueError(f"the pretrained model knows {theirs['n_items']} items and this "
                             f"fit {mine['n_items']}, or in another order; give both fits the "
                             "same full catalogue with fit(train, items=all_item_ids)")
        return source

    # ------------------------------------------------------------------ training data
    def _training_windows(self, histories: list[np.ndarray]) -> tuple[np.ndarray]:
        return (cloze_windows(histories, self.max_len),)

    def _training_model(self) -> keras.Model:
        """The network wrapped to score only the chosen positions, with the full softmax."""
        trainer = MaskedPositionsTrainer(self.model_)
        trainer.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=self.jit_compile)
        return trainer

    @property
    def target_slots(self) -> int:
        """Targets scored per window: the expected count ``max_len * mask_rate`` plus four
        standard deviations (a window rarely has more; see :func:`target_positions`)."""
        mean = self.max_len * self.mask_rate
        spread = 4 * np.sqrt(self.max_len * self.mask_rate * (1 - self.mask_rate))
        return int(min(self.max_len, np.ceil(mean + spread) + 1))

    def cloze_batch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's corrupted windows and their targets (0 = no loss), fresh each epoch
        and seeded by ``(seed, epoch)``."""
        (windows,) = self.windows_
        rng = np.random.default_rng([self.seed, epoch])
        inputs, targets = cloze_mask(windows, len(self.items_), rng, self.mask_rate)
        last = rng.random(len(windows)) < self.last_item_rate
        if last.any():
            inputs[last], targets[last] = mask_last_item(windows[last], len(self.items_) + 1)
        return inputs, targets

    def _epoch_data(self, epoch: int) -> tuple[tuple, np.ndarray, np.ndarray]:
        """``((inputs, positions), targets, weights)`` for the trainer: this epoch's cloze
        task, scored at the chosen positions only."""
        inputs, targets = self.cloze_batch(epoch)
        rng = np.random.default_rng([self.seed, epoch, 1])
        positions, picked = target_positions(targets, self.target_slots, rng)
        return (inputs, positions), picked, (picked > 0).astype("float32")

    # ------------------------------------------------------------------ scoring
    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """Scores over the catalogue (columns in ``items_.ids_`` order) after each history:
        [MASK] is appended and the scores at its position rank the items.
        """
        mask = self.model_.mask_token
        keep = self.max_len - 1
        masked = [np.append(np.asarray(h, dtype=np.int64)[len(h) - keep:] if len(h) > keep
                            else np.asarray(h, dtype=np.int64), mask) for h in histories]
        return super().score_histories(masked)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str) -> BERT4RecRecommender:
        """Load a model saved with :meth:`save`; recommend with :meth:`recommend_for_history`.

        A loaded model knows its items but not the training users or their histories, so
        ``recommend(users)`` is not available: pass each user's history instead.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a readable ``.keras`` archive (empty, truncated,
                corrupt), or holds another kind of model than :class:`BERT4Rec`.
        """
        model = load_model_file(path, BERT4Rec, "BERT4RecRecommender")
        rec = cls(max_len=model.max_len, d_model=model.d_model, num_heads=model.num_heads,
                  num_blocks=model.num_blocks, d_ff=model.d_ff, dropout=model.dropout_rate,
                  progress=False)
        rec.model_ = model
        rec.items_ = IdEncoder().fit(model.item_ids)
        rec.loaded_from_ = str(path)
        return rec
