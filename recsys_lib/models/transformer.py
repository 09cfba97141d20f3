"""Keras building blocks of a Transformer over item sequences (notebook 09 builds them).

Conventions: sequences hold item *indices* 1..n_items with 0 as padding, padded on the left,
so the most recent item is always the last position. Masks are boolean, True = a real item.
All layers are registered for ``.keras`` serialisation under the package ``recsys_lib``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def sinusoidal_positions(length: int, d_model: int) -> np.ndarray:
    """The fixed sinusoidal position encodings of "Attention is all you need".

    PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d)).

    Args:
        length: number of positions (>= 1).
        d_model: encoding size (>= 2, even).

    Returns:
        (length, d_model) float32 array.

    Raises:
        ValueError: bad sizes.

    Explained in notebook 09.
    """
    if length < 1 or d_model < 2 or d_model % 2:
        raise ValueError(f"need length >= 1 and an even d_model >= 2, got {length}, {d_model}")
    positions = np.arange(length)[:, None]
    rates = 1.0 / 10000 ** (np.arange(0, d_model, 2) / d_model)
    pe = np.zeros((length, d_model), dtype=np.float32)
    pe[:, 0::2] = np.sin(positions * rates)
    pe[:, 1::2] = np.cos(positions * rates)
    return pe


@keras.saving.register_keras_serializable(package="recsys_lib")
class ItemPositionEmbedding(keras.layers.Layer):
    """Item embedding (scaled by sqrt(d_model)) plus a position embedding, then dropout.

    Padding positions (item 0) are zeroed after the sum, so they carry no signal. A sequence
    shorter than ``max_len`` gets the *last* positions (it is a left-padded sequence with its
    padding cropped), so the newest item always has position ``max_len - 1``.

    Args:
        n_items: number of real items (indices 1..n_items; 0 is padding).
        max_len: longest sequence.
        d_model: embedding size.
        dropout: dropout rate after the sum.
        positions: ``"learned"`` or ``"sinusoidal"`` (fixed, not trained).

    Explained in notebook 09.
    """

    def __init__(self, n_items: int, max_len: int, d_model: int, dropout: float = 0.0,
                 positions: str = "learned", **kwargs) -> None:
        super().__init__(**kwargs)
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {positions!r}")
        self.n_items, self.max_len, self.d_model = n_items, max_len, d_model
        self.dropout_rate, self.positions = dropout, positions
        self.item_embedding = keras.layers.Embedding(n_items + 1, d_model, name="items")
        self.dropout = keras.layers.Dropout(dropout)
        if positions == "learned":
            self.position_embedding = keras.layers.Embedding(max_len, d_model, name="positions")

    def build(self, input_shape) -> None:
        self.item_embedding.build(input_shape)
        if self.positions == "learned":
            self.position_embedding.build((self.max_len,))
        else:
            self.fixed_positions = sinusoidal_positions(self.max_len, self.d_model)
        self.built = True

    def call(self, sequences, training=None, item_vectors=None):
        """Embed ``sequences`` (batch, T) into (batch, T, d_model).

        ``item_vectors``, if given, replaces the item embedding lookup
        ``self.item_embedding(sequences)`` (batch, T, d_model), e.g. a tensor a
        ``GradientTape`` watches for gradient-times-input attributions (notebook 14);
        ``sequences`` still sets the padding.
        """
        # Positions count from the right: sequences are left-padded, so the newest item is
        # always position max_len - 1, also in a batch cropped to its longest window (the
        # length buckets of SASRecRecommender): cropping left padding changes nothing.
        length = ops.shape(sequences)[1]
        if item_vectors is None:
            item_vectors = self.item_embedding(sequences)
        x = item_vectors * math.sqrt(self.d_model)  # (batch, T, d)
        first = self.max_len - length
        if self.positions == "learned":
            pos = self.position_embedding(ops.arange(first, self.max_len))  # (T, d)
        else:
            pos = ops.convert_to_tensor(self.fixed_positions)[first:]
        x = self.dropout(x + pos[None, :, :], training=training)
        real = ops.cast(ops.not_equal(sequences, 0), x.dtype)[..., None]  # (batch, T, 1)
        return x * real

    def get_config(self) -> dict:
        return super().get_config() | {
            "n_items": self.n_items, "max_len": self.max_len, "d_model": self.d_model,
            "dropout": self.dropout_rate, "positions": self.positions}


@keras.saving.register_keras_serializable(package="recsys_lib")
class CausalTransformerBlock(keras.layers.Layer):
    """One Transformer block with causal (or, with ``causal=False``, bidirectional)
    self-attention over left-padded sequences.

    pre-LN:  h = x + Drop(MHA(LN(x)));  y = h + Drop(FFN(LN(h)))
    post-LN: h = LN(x + Drop(MHA(x)));  y = LN(h + Drop(FFN(h)))
    FFN(z) = W2 gelu(W1 z + b1) + b2. Position t attends to real items at positions <= t
    only (causal, SASRec) or at every position (bidirectional, BERT and BERT4Rec: the same
    block without the causal mask); outputs at padding positions are set to 0.

    Args:
        d_model: width of the block's input and output.
        num_heads: attention heads (d_model must be divisible by it).
        d_ff: hidden width of the feed-forward network.
        dropout: dropout rate on attention weights and both residual branches.
        pre_ln: pre-LN (stable without warm-up; used by the course) or post-LN (original).
        causal: mask the future (True, next-item models) or not (False, masked-item models).

    Explained in notebook 09 (the bidirectional variant in notebook 11).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 pre_ln: bool = True, causal: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.d_model, self.num_heads, self.d_ff = d_model, num_heads, d_ff
        self.dropout_rate, self.pre_ln, self.causal = dropout, pre_ln, bool(causal)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads, d_model // num_heads, dropout=dropout, name="attention")
        self.ffn_in = keras.layers.Dense(d_ff, activation="gelu", name="ffn_in")
        self.ffn_out = keras.layers.Dense(d_model, name="ffn_out")
        self.norm_attention = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_attention")
        self.norm_ffn = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_ffn")
        self.drop_attention = keras.layers.Dropout(dropout)
        self.drop_ffn = keras.layers.Dropout(dropout)

    def build(self, input_shape) -> None:
        self.attention.build(input_shape, input_shape)
        self.norm_attention.build(input_shape)
        self.norm_ffn.build(input_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], self.d_ff))
        self.built = True

    def call(self, x, real, training=None, return_attention_scores=False):
        """Apply the block.

        Args:
            x: (batch, T, d_model).
            real: (batch, T) boolean, True where the position holds a real item.
            return_attention_scores: also return (batch, heads, T, T) attention weights.
        """
        # key padding mask (batch, 1, T), combined with the causal mask inside the layer
        mask = ops.expand_dims(real, 1)
        source = self.norm_attention(x) if self.pre_ln else x
        attended = self.attention(source, source, attention_mask=mask,
                                  use_causal_mask=self.causal, training=training,
                                  return_attention_scores=return_attention_scores)
        if return_attention_scores:  # only when asked: Keras can then take a fused path
            attended, scores = attended
        h = x + self.drop_attention(attended, training=training)
        if not self.pre_ln:
            h = self.norm_attention(h)
        inner = self.norm_ffn(h) if self.pre_ln else h
        y = h + self.drop_ffn(self.ffn_out(self.ffn_in(inner)), training=training)
        if not self.pre_ln:
            y = self.norm_ffn(y)
        y = y * ops.cast(real, y.dtype)[..., None]
        return (y, scores) if return_attention_scores else y

    def get_config(self) -> dict:
        return super().get_config() | {
            "d_model": self.d_model, "num_heads": self.num_heads, "d_ff": self.d_ff,
            "dropout": self.dropout_rate, "pre_ln": self.pre_ln, "causal": self.causal}


def cloze_mask(sequences: np.ndarray, n_items: int, rng: np.random.Generator,
               rate: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masked-item corruption of left-padded item sequences (the 80-10-10 rule).

    Each real position is chosen with probability ``rate`` (at least one per sequence that has
    a real item); a chosen item becomes the mask token ``n_items + 1`` with probability 0.8, a
    random item in ``1..n_items`` with probability 0.1, and stays as it is with probability
    0.1. The model must predict the original item at every chosen position, and only there.
    Padding (0) is never chosen.

    Args:
        sequences: (batch, T) int item indices, 0 = padding.
        n_items: catalogue size; the mask token is ``n_items + 1``.
        rng: a NumPy Generator (the corruption is random; seed it to repeat it).
        rate: share of real positions to predict, in (0, 1].

    Returns:
        ``(inputs, targets)``, both (batch, T) int32: the corrupted sequences, and the original
        item at chosen positions with 0 (no loss) everywhere else.

    Raises:
        ValueError: a non-2-D array, ids outside ``0..n_items`` or a bad ``rate``.

    Explained in notebook 11.
    """
    seqs = np.asarray(sequences)
    if seqs.ndim != 2:
        raise ValueError(f"sequences must be a (batch, T) array, got shape {seqs.shape}")
    if not 0.0 < float(rate) <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    if seqs.size and (seqs.min() < 0 or seqs.max() > n_items):
        raise ValueError(f"item indices must be in 0..{n_items} (0 = padding), got "
                         f"{seqs.min()}..{seqs.max()}")
    real = seqs > 0
    chosen = real & (rng.random(seqs.shape) < rate)
    for row in np.flatnonzero(real.any(axis=1) & ~chosen.any(axis=1)):
        chosen[row, rng.choice(np.flatnonzero(real[row]))] = True  # at least one per sequence
    action = rng.random(seqs.shape)
    inputs = seqs.astype(np.int32, copy=True)
    inputs[chosen & (action < 0.8)] = n_items + 1
    swap = chosen & (action >= 0.8) & (action < 0.9)
    inputs[swap] = rng.integers(1, n_items + 1, size=int(swap.sum()))
    targets = np.where(chosen, seqs, 0).astype(np.int32)
    return inputs, targets
