"""GRU4Rec: a recurrent next-item recommender, trained exactly like SASRec (notebook 10).

Model (Hidasi et al., 2016): item embeddings, one or more GRU layers over the user's item
sequence, and scores for every catalogue item from the hidden state at each position, read
out with the same item embedding matrix used at the input (tied embeddings, as in SASRec).

Everything else is SASRec's, on purpose, so that comparing the two isolates the sequence
encoder (a recurrent state against causal self-attention): the same left-padded histories
truncated to the last ``max_len`` items, the same training windows, the same full softmax
cross-entropy at every position, and the same training loop with early stopping on
validation NDCG@10 over the full catalogue (:mod:`recsys_lib.training`). The history
handling, scoring and saving are SASRec's own functions, imported from
:mod:`recsys_lib.models.sasrec` (no subclassing).

Padding: the sequences are left-padded with item 0. The embedding has ``mask_zero=True``
and each GRU gets the mask, so a padded step leaves the state unchanged: the GRU starts
from its zero state at the first real item, and a history scores the same with any amount
of padding. The GRU layers use ``use_cudnn=False``: cuDNN accepts masks of right-padded
sequences only, and Keras would stop with an error on a GPU (the generic kernel is slower
there, exact everywhere).
"""

from __future__ import annotations

import keras
from keras import ops

from recsys_lib.checks import check_float, check_int
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.models.sasrec import (
    SequenceRecommender,
    load_model_file,
    plain_ids,
    tied_logits,
)
from recsys_lib.preprocessing import IdEncoder


@keras.saving.register_keras_serializable(package="recsys_lib")
class GRU4Rec(keras.Model):
    """Maps left-padded item sequences (batch, T) to logits over items (batch, T, n_items + 1).

    Embedding (``mask_zero=True``) -> dropout -> ``num_layers`` x (GRU -> dropout) -> scores
    ``hidden @ embeddings.T``. Column 0 of the logits (padding) is forced to a large negative
    number, so the model never predicts padding. ``item_ids`` (the original id of index
    1..n) and ``max_len`` are stored in the config so a saved model can be used on its own;
    the network itself reads sequences of any length.

    Args:
        n_items: catalogue size (indices 1..n_items; 0 is padding).
        max_len: the history length the recommender pads to (kept for saving).
        d_model: embedding size and GRU state size.
        num_layers: stacked GRU layers.
        dropout: dropout rate on the embeddings and on each GRU layer's outputs.
        item_ids: original id of each index 1..n_items.

    Explained in notebook 10.
    """

    def __init__(self, n_items: int, max_len: int = 50, d_model: int = 64, num_layers: int = 1,
                 dropout: float = 0.2, item_ids: list | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.max_len, self.d_model = n_items, max_len, d_model
        self.num_layers, self.dropout_rate = num_layers, dropout
        self.item_ids = list(item_ids) if item_ids is not None else list(range(1, n_items + 1))
        self.item_embedding = keras.layers.Embedding(n_items + 1, d_model, mask_zero=True,
                                                     name="item_embedding")
        self.input_dropout = keras.layers.Dropout(dropout, name="input_dropout")
        self.grus = [keras.layers.GRU(d_model, return_sequences=True, use_cudnn=False,
                                      name=f"gru_{i}") for i in range(num_layers)]
        self.dropouts = [keras.layers.Dropout(dropout, name=f"dropout_{i}")
                         for i in range(num_layers)]

    def build(self, input_shape) -> None:
        self.item_embedding.build(input_shape)
        shape = (*input_shape, self.d_model)
        for gru in self.grus:
            gru.build(shape)
        self.built = True

    def hidden(self, sequences, training=None):
        """GRU outputs (batch, T, d_model); a padded step repeats the previous output (0s).

        Explained in notebook 10.
        """
        mask = ops.not_equal(sequences, 0)
        x = self.input_dropout(self.item_embedding(sequences), training=training)
        for gru, dropout in zip(self.grus, self.dropouts, strict=True):
            x = dropout(gru(x, mask=mask, training=training), training=training)
        return x

    def logits(self, hidden):
        """Scores of every item index for each hidden state (tied item embeddings).

        Explained in notebook 10.
        """
        return tied_logits(hidden, self.item_embedding.embeddings, self.n_items)

    def call(self, sequences, training=None):
        return self.logits(self.hidden(sequences, training=training))

    def get_config(self) -> dict:
        return {"n_items": self.n_items, "max_len": self.max_len, "d_model": self.d_model,
                "num_layers": self.num_layers, "dropout": self.dropout_rate,
                "item_ids": plain_ids(self.item_ids),
                "name": self.name}


class GRU4RecRecommender(SequenceRecommender):
    """Next-item GRU recommender (GRU4Rec) behind the course's recommender interface.

    Trained like :class:`~recsys_lib.models.sasrec.SASRecRecommender` (both are
    :class:`~recsys_lib.models.sasrec.SequenceRecommender`, so only the network differs):
    next-item prediction at every position of left-padded windows of each user's time-ordered
    history, full softmax cross-entropy over the catalogue, early stopping on validation
    NDCG@10.

    Args:
        max_len: longest history the model reads (older items are dropped).
        d_model: embedding size and GRU state size.
        num_layers: stacked GRU layers.
        dropout: dropout rate on the embeddings and GRU outputs, in [0, 1).
        epochs: maximum epochs; early stopping usually ends sooner.
        batch_size, learning_rate: Adam settings.
        patience: validations without a better validation NDCG@10 before stopping.
        eval_every: validate every this many epochs.
        progress: print one line per epoch (loss, validation NDCG@10 and HR@10, seconds).
        seed: seeds Keras, NumPy and Python for a reproducible run on CPU.
        jit_compile: compile the training step with XLA (off by default: on CPU it did not
            make the GRU's step loop faster, unlike SASRec's attention).

    Attributes set by ``fit``:
        model_: the trained :class:`GRU4Rec`.
        histories_: user_id -> array of item indices (1-based, oldest first).
        history_, best_epoch_: see :class:`~recsys_lib.training.KerasRecommender`.

    Raises:
        ArgumentError: a size or count that is not a positive integer, a dropout outside
            [0, 1), a learning rate that is not positive, a negative seed.

    Explained in notebook 10.
    """

    name = "gru4rec"
    label = "GRU4Rec"

    def __init__(self, max_len: int = 50, d_model: int = 64, num_layers: int = 1,
                 dropout: float = 0.2, epochs: int = 200, batch_size: int = 128,
                 learning_rate: float = 1e-3, patience: int = 5, eval_every: int = 1,
                 progress: bool = True, seed: int = DEFAULT_SEED,
                 jit_compile: bool = False) -> None:
        super().__init__(epochs, batch_size, learning_rate, patience, eval_every, progress,
                         seed)
        self.max_len, self.d_model = check_int("max_len", max_len), check_int("d_model", d_model)
        self.num_layers = check_int("num_layers", num_layers)
        self.dropout = check_float("dropout", dropout, strict=False, maximum=1.0)
        self.jit_compile = bool(jit_compile)

    def _build_model(self) -> GRU4Rec:
        return GRU4Rec(len(self.items_), self.max_len, self.d_model, self.num_layers,
                       self.dropout, item_ids=self.items_.ids_.tolist())

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str) -> GRU4RecRecommender:
        """Load a model saved with :meth:`save`; recommend with :meth:`recommend_for_history`.

        A loaded model knows its items but not the training users or their histories, so
        ``recommend(users)`` is not available: pass each user's history instead.

        Returns:
            A recommender with ``model_`` and ``items_`` set.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a readable ``.keras`` archive (empty, truncated,
                corrupt), or holds another kind of model than :class:`GRU4Rec`.

        Explained in notebook 10.
        """
        model = load_model_file(path, GRU4Rec, "GRU4RecRecommender")
        rec = cls(max_len=model.max_len, d_model=model.d_model, num_layers=model.num_layers,
                  dropout=model.dropout_rate, progress=False)
        rec.model_ = model
        rec.items_ = IdEncoder().fit(model.item_ids)
        rec.loaded_from_ = str(path)
        return rec
