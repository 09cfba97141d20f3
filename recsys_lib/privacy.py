"""Privacy for recommenders: differentially private training (DP-SGD) and federated averaging.

**Differential privacy.** A training algorithm ``M`` is (epsilon, delta)-differentially private
when, for any two datasets ``D`` and ``D'`` that differ by one *privacy unit* (here: one user)
and any set of outcomes ``S``, ``P[M(D) in S] <= exp(epsilon) P[M(D') in S] + delta``. Small
epsilon means the trained weights say little about whether any one user took part.

**DP-SGD** (Abadi et al., 2016) makes a gradient step private in three moves::

    g_i  = grad of example i's loss                      per-example gradients
    g_i <- g_i * min(1, C / ||g_i||)                     clipping: each norm <= C
    g    = (sum_i g_i + N(0, (sigma C)^2 I)) / B         Gaussian noise on the sum

Clipping bounds what one example can change in the sum (its *sensitivity*, ``C``); the noise,
``sigma`` (the *noise multiplier*) times ``C``, hides that change. ``B`` is the *expected*
batch size ``q n``. Each step takes a **Poisson sample**: every example enters the batch
independently with probability ``q``, so batch sizes vary. That is the sampling the
accountant assumes ("privacy amplification by subsampling"); shuffled fixed-size batches are
a different mechanism, for which these epsilons do not hold.

**The accountant.** Each step is a ``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))``;
training composes it ``steps`` times. Google's ``dp_accounting`` turns that event into an
epsilon at a given delta, with Renyi DP (``RdpAccountant``, an upper bound) or with privacy
loss distributions (``PLDAccountant``, tighter). :func:`dp_epsilon` wraps both;
:func:`noise_for_epsilon` finds the noise multiplier for a target epsilon.

**The privacy unit.** The guarantee protects one *example*. It protects one *user* only when
every user contributes at most one example to the training set: :func:`one_example_per_user`
builds such a set (one random cut of each user's history: the items before it -> the item at
it). Training on all windows of a user would give a user with 50 examples up to 50 times the
influence, and the guarantee, per user, would be far weaker than the printed epsilon.

**What the epsilon does not cover.** Choices made by looking at the private data (the
catalogue restricted to the most-rated items, hyperparameters tuned on it, the training loss
that :func:`train_dp_sgd` reports for monitoring) are not accounted for; a real deployment
makes them on public data or pays for them with privacy budget. NumPy's generator and
floating-point noise are fine for teaching, not for production (which needs a secure
generator and care with floating point, Mironov 2012).

**Federated averaging** (McMahan et al., 2017) keeps the data on the clients (phones, or
groups of users): each round, a few clients start from the global weights, take SGD steps on
their own data, and send their weights back; the server sets the global weights to the mean
of the clients' weights, weighted by their numbers of examples. Only weights travel, but
weights can still leak data: federated learning is not differential privacy by itself.

Explained in notebook 14.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from recsys_lib.checks import check_choice, check_float, check_int
from recsys_lib.models.sasrec import left_pad, tied_logits
from recsys_lib.progress import progress as progress_bar

try:
    import dp_accounting
except ImportError as err:  # pragma: no cover - the README's setup installs it
    raise ImportError("recsys_lib.privacy needs Google's privacy accountant: "
                      "pip install dp-accounting (on Colab: pip install --no-deps "
                      "dp-accounting, as notebook 14's first cell does)") from err

#: Most per-example gradient values held at once (float32: 4 bytes each), when no
#: ``chunk_size`` is given: 2**26 values are 256 MB.
MAX_GRADIENT_VALUES = 2**26

ACCOUNTANTS = ("rdp", "pld")

# One compiled function per model (and kind), built on first use; weak keys so that a model
# that is no longer used can be freed.
_PER_EXAMPLE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SGD_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------ a model
@keras.saving.register_keras_serializable(package="recsys_lib")
class PooledHistoryModel(keras.Model):
    """Pooled history -> next item: the mean of the history's item embeddings, scored against
    every item with the same (tied) embedding table, plus a learned bias per item.

    The item bias learns popularity: a direction that every example's gradient shares, so
    it survives DP-SGD's noise far better than the embeddings (each example's embedding
    gradient touches its own items).

    Inputs are (batch, max_len) item indices, 1..n_items, left-padded with 0; padding is left
    out of the mean. Outputs are (batch, n_items + 1) logits, column 0 (padding) forced to a
    large negative number. A small model whose per-example gradients are cheap, for DP-SGD.

    Explained in notebook 14.
    """

    def __init__(self, n_items: int, embedding_dim: int = 32, item_bias: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items = check_int("n_items", n_items)
        self.embedding_dim = check_int("embedding_dim", embedding_dim)
        self.use_item_bias = bool(item_bias)
        self.item_embedding = keras.layers.Embedding(self.n_items + 1, self.embedding_dim,
                                                     name="item_embedding")
        self.item_bias = (self.add_weight(shape=(self.n_items + 1,), initializer="zeros",
                                          name="item_bias") if self.use_item_bias else None)

    def call(self, inputs, training=None):
        real = ops.cast(ops.expand_dims(inputs > 0, -1), "float32")   # (batch, T, 1)
        vectors = self.item_embedding(inputs) * real                   # (batch, T, d)
        count = ops.maximum(ops.sum(real, axis=1), 1.0)                # (batch, 1)
        pooled = ops.sum(vectors, axis=1) / count                      # (batch, d)
        logits = tied_logits(pooled, self.item_embedding.embeddings, self.n_items)
        return logits if self.item_bias is None else logits + self.item_bias

    def get_config(self) -> dict:
        return {**super().get_config(), "n_items": self.n_items,
                "embedding_dim": self.embedding_dim, "item_bias": self.use_item_bias}


# ------------------------------------------------------------------------------ checks
def _check_examples(inputs, targets) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets as arrays with the same number of rows; targets 1-D integers >= 0."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.ndim < 1 or targets.ndim != 1 or len(inputs) != len(targets):
        raise ValueError(f"inputs must have one row per target and targets must be 1-D: got "
                         f"inputs of shape {inputs.shape} and targets of shape {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer class (item) indices, got dtype "
                         f"{targets.dtype}")
    if len(targets) and targets.min() < 0:
        raise ValueError(f"targets must be >= 0, got {targets.min()}")
    return inputs, targets


def _check_model(model: keras.Model, inputs: np.ndarray) -> list:
    """Build the model on a first example if needed; its trainable variables."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    if not model.built and len(inputs):
        model(inputs[:1])
    if not model.trainable_variables:
        raise ValueError("the model has no trainable variables: build it (call it on a batch) "
                         "and leave some layers trainable")
    return model.trainable_variables


def _check_privacy(noise_multiplier: float, sampling_rate: float, steps: int,
                   delta: float) -> tuple[float, float, int, float]:
    return (check_float("noise_multiplier", noise_multiplier, strict=False),
            check_float("sampling_rate", sampling_rate, maximum=1.0, strict_maximum=False),
            check_int("steps", steps),
            check_float("delta", delta, maximum=1.0))


def _as_rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_int("seed", seed, minimum=0))


def _chunk_size(chunk_size: int | None, variables: list) -> int:
    """Examples per chunk: ``chunk_size``, or as many as fit in :data:`MAX_GRADIENT_VALUES`."""
    if chunk_size is not None:
        return check_int("chunk_size", chunk_size)
    per_example = sum(int(np.prod(v.shape)) for v in variables)
    return int(max(1, min(1024, MAX_GRADIENT_VALUES // max(per_example, 1))))


def _example_losses(targets, logits):
    """Sparse softmax cross-entropy of each example, (batch,)."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(targets, tf.int32), logits=tf.cast(logits, tf.float32))


# ------------------------------------------------------------------------------ DP-SGD
def _per_example_function(model: keras.Model) -> Callable:
    """A compiled ``(inputs, targets) -> (per-example gradients, losses)`` for ``model``."""
    function = _PER_EXAMPLE_FUNCTIONS.get(model)
    if function is not None:
        return function
    model_ref = weakref.ref(model)

    @tf.function(reduce_retracing=True)
    def per_example(inputs, targets):
        net = model_ref()
        variables = net.trainable_variables

        def one_example(example):
            x, y = example
            with tf.GradientTape() as tape:
                loss = _example_losses(y[None], net(x[None], training=False))[0]
            grads = tape.gradient(loss, variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            # an embedding's gradient is sparse (IndexedSlices): make it a dense table
            return [tf.convert_to_tensor(g) for g in grads], loss

        return tf.vectorized_map(one_example, (inputs, targets))

    _PER_EXAMPLE_FUNCTIONS[model] = per_example
    return per_example


def per_example_gradients(model: keras.Model, inputs, targets,
                          chunk_size: int | None = None) -> list[tf.Tensor]:
    """Gradient of each example's loss with respect to each trainable variable, vectorised.

    The loss of example ``i`` is the sparse softmax cross-entropy of ``model(inputs)[i]``
    (logits over classes) and ``targets[i]``. One backward pass per example would be slow;
    ``tf.vectorized_map`` runs the per-example gradient for the whole batch at once. An
    embedding table's sparse gradient becomes a dense table per example, so memory grows as
    batch x parameters: the batch is cut into chunks of ``chunk_size`` examples. The model
    runs with ``training=False`` (no dropout: random layers do not vectorise).

    Args:
        model: a built or buildable Keras model mapping inputs to (batch, n_classes) logits.
        inputs: (batch, ...) model inputs, e.g. (batch, max_len) item indices, 0 = padding.
        targets: (batch,) integer class indices.
        chunk_size: examples per chunk; default: as many as keep the chunk's gradients
            under :data:`MAX_GRADIENT_VALUES` values.

    Returns:
        One tensor per ``model.trainable_variables``, of shape (batch, *variable.shape).

    Raises:
        ValueError: inputs and targets of different lengths, empty, or non-integer targets.

    Explained in notebook 14.
    """
    inputs, targets = _check_examples(inputs, targets)
    if not len(targets):
        raise ValueError("per_example_gradients needs at least one example, got 0")
    variables = _check_model(model, inputs)
    grads, _ = _gradients_in_chunks(model, inputs, targets, _chunk_size(chunk_size, variables))
    return grads


def _gradients_in_chunks(model, inputs, targets, size):
    function = _per_example_function(model)
    parts = [function(tf.constant(inputs[s:s + size]), tf.constant(targets[s:s + size]))
             for s in range(0, len(targets), size)]
    grads = [tf.concat([p[0][v] for p in parts], axis=0) for v in range(len(parts[0][0]))]
    return grads, tf.concat([p[1] for p in parts], axis=0)


def _global_norms(per_example: list) -> tf.Tensor:
    """(batch,) L2 norm of each example's gradient over all variables together."""
    squares = [tf.reduce_sum(tf.reshape(tf.square(g), (tf.shape(g)[0], -1)), axis=1)
               for g in per_example]
    return tf.sqrt(tf.add_n(squares))


def clip_gradients(per_example: list, l2_norm_clip: float) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Scale each example's gradient by ``min(1, C / norm)``, its global L2 norm over all
    variables, so that no example's gradient is longer than ``C``.

    Args:
        per_example: one (batch, *variable.shape) tensor per variable, as returned by
            :func:`per_example_gradients`.
        l2_norm_clip: ``C`` > 0.

    Returns:
        ``(clipped, norms)``: the clipped gradients (same shapes) and the (batch,) norms
        before clipping. Examples whose norm is at most ``C`` are unchanged.

    Raises:
        ValueError: ``C`` not > 0, no gradients, or different batch sizes across variables.

    Explained in notebook 14.
    """
    clip = check_float("l2_norm_clip", l2_norm_clip)
    if not per_example:
        raise ValueError("per_example must hold one gradient tensor per variable, got none")
    per_example = [tf.convert_to_tensor(g, dtype=tf.float32) for g in per_example]
    sizes = {int(g.shape[0]) for g in per_example}
    if len(sizes) != 1:
        raise ValueError(f"every per-example gradient must have the same batch size (first "
                         f"axis), got {sorted(sizes)}")
    norms = _global_norms(per_example)
    factor = tf.minimum(1.0, clip / tf.maximum(norms, 1e-12))          # (batch,)
    clipped = [g * tf.reshape(factor, (-1,) + (1,) * (len(g.shape) - 1)) for g in per_example]
    return clipped, norms


def dp_sgd_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, inputs, targets, *,
                l2_norm_clip: float, noise_multiplier: float, expected_batch_size: float,
                seed: int | np.random.Generator, chunk_size: int | None = None) -> dict:
    """One DP-SGD step: clip each example's gradient to norm ``C``, sum, add Gaussian noise
    ``N(0, (noise_multiplier C)^2)`` to each coordinate of the sum, divide by the *expected*
    batch size and apply the result with ``optimizer``.

    Dividing by the expected batch size (``q n`` under Poisson sampling), not by the batch's
    actual size, keeps the batch size itself out of the update (it would leak who is in the
    batch). An empty batch still adds noise: the accountant counts every step.
    ``noise_multiplier=0`` gives clipping alone, with no privacy.

    Args:
        model: Keras model mapping inputs to logits (see :func:`per_example_gradients`).
        optimizer: a Keras optimizer (DP-SGD's privacy does not depend on which: it only
            post-processes the noisy gradient).
        inputs, targets: the step's batch (may be empty).
        l2_norm_clip: ``C`` > 0.
        noise_multiplier: ``sigma`` >= 0.
        expected_batch_size: ``q n`` > 0.
        seed: an integer or a NumPy Generator for the noise.
        chunk_size: see :func:`per_example_gradients`.

    Returns:
        ``{"batch_size", "loss", "clipped_fraction"}``: the batch's size, its mean loss before
        the step (NaN for an empty batch; not private, for monitoring) and the share of its
        examples whose gradient was clipped.

    Raises:
        ValueError: bad arguments.

    Explained in notebook 14.
    """
    clip = check_float("l2_norm_clip", l2_norm_clip)
    sigma = check_float("noise_multiplier", noise_multiplier, strict=False)
    expected = check_float("expected_batch_size", expected_batch_size)
    rng = _as_rng(seed)
    inputs, targets = _check_examples(inputs, targets)
    variables = _check_model(model, inputs)
    if len(targets):
        grads, losses = _gradients_in_chunks(model, inputs, targets,
                                             _chunk_size(chunk_size, variables))
        clipped, norms = clip_gradients(grads, clip)
        sums = [tf.reduce_sum(g, axis=0) for g in clipped]
        loss = float(tf.reduce_mean(losses))
        clipped_fraction = float(np.mean(norms.numpy() > clip))
    else:
        sums = [tf.zeros(v.shape, tf.float32) for v in variables]
        loss, clipped_fraction = float("nan"), 0.0
    noisy = [(s + rng.normal(0.0, sigma * clip, size=s.shape).astype(np.float32)) / expected
             for s in sums]
    optimizer.apply_gradients(zip(noisy, variables, strict=True))
    return {"batch_size": len(targets), "loss": loss, "clipped_fraction": clipped_fraction}


def _make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.SGD(learning_rate)


def train_dp_sgd(model: keras.Model, inputs, targets, *, epochs: int,
                 sampling_rate: float | None = None, batch_size: int | None = None,
                 l2_norm_clip: float, noise_multiplier: float, learning_rate: float,
                 delta: float = 1e-5, optimizer: str = "sgd", accountant: str = "rdp",
                 seed: int = 0, progress: bool = False, chunk_size: int | None = None,
                 redraw: Callable[[np.random.Generator], tuple] | None = None) -> dict:
    """Train ``model`` with DP-SGD on Poisson-sampled batches and report the privacy spent.

    **Poisson subsampling:** at every step each example enters the batch independently with
    probability ``q`` (``sampling_rate``, or ``batch_size / n``), so batches vary in size
    around ``q n``; this is the sampling the accountant assumes. An epoch is ``round(1 / q)``
    steps (each example is seen once per epoch on average). Each step is
    :func:`dp_sgd_step`. The guarantee is per *example*: it is per *user* only if each user
    has at most one example (see :func:`one_example_per_user`). With ``redraw``, every user's
    example is drawn afresh at the start of each epoch (e.g. a new random cut of their
    history): still one example per user in each step, so still user-level privacy with the
    same epsilon, and the model sees more of each history.

    Args:
        model: Keras model mapping inputs to (batch, n_classes) logits.
        inputs: (n, ...) inputs; targets: (n,) integer classes.
        epochs: number of epochs >= 1.
        sampling_rate: ``q`` in (0, 1]; give this or ``batch_size`` (expected batch size).
        batch_size: expected batch size, 1..n; ``q = batch_size / n``.
        l2_norm_clip: ``C`` > 0.
        noise_multiplier: ``sigma`` >= 0 (0: no privacy, epsilon is infinite).
        learning_rate: step size > 0.
        delta: the delta at which epsilon is reported, in (0, 1); it should be well below
            ``1 / n``.
        optimizer: ``"sgd"`` (DP-SGD proper) or ``"adam"`` (same privacy: post-processing).
        accountant: ``"rdp"`` or ``"pld"`` (see :func:`dp_epsilon`; ``"pld"`` adds a second
            or more per epoch).
        seed: seeds the sampling and the noise (not the model's initial weights).
        progress: show a progress bar over the epochs.
        chunk_size: see :func:`per_example_gradients`.
        redraw: ``rng -> (inputs, targets)``, called at the start of every epoch after the
            first, returning arrays of the same shapes, row ``i`` for the same user as in
            ``inputs``, e.g. ``lambda rng: one_example_per_user(histories, 50, rng)``.

    Returns:
        A dict: ``history`` (per epoch: ``loss``, the mean training loss of the sampled
        examples before their step, not private, for monitoring; ``epsilon`` spent so far;
        ``clipped_fraction``; ``seconds``), ``steps``, ``epsilon`` (after all steps),
        ``delta``, ``sampling_rate``, ``noise_multiplier``, ``l2_norm_clip``,
        ``mean_batch_size`` and ``seconds``.

    Raises:
        ValueError: bad arguments, or both / neither of ``sampling_rate`` and ``batch_size``.

    Explained in notebook 14.
    """
    inputs, targets = _check_examples(inputs, targets)
    n = len(targets)
    if n == 0:
        raise ValueError("train_dp_sgd needs at least one training example, got 0")
    if (sampling_rate is None) == (batch_size is None):
        raise ValueError("give exactly one of sampling_rate (q) and batch_size (expected "
                         "batch size, q = batch_size / n)")
    if batch_size is not None:
        sampling_rate = check_int("batch_size", batch_size, maximum=n) / n
    q = check_float("sampling_rate", sampling_rate, maximum=1.0, strict_maximum=False)
    epochs = check_int("epochs", epochs)
    clip = check_float("l2_norm_clip", l2_norm_clip)
    sigma = check_float("noise_multiplier", noise_multiplier, strict=False)
    learning_rate = check_float("learning_rate", learning_rate)
    delta = check_float("delta", delta, maximum=1.0)
    check_choice("optimizer", optimizer, ("sgd", "adam"))
    check_choice("accountant", accountant, ACCOUNTANTS)
    _check_model(model, inputs)
    rng = _as_rng(seed)
    opt = _make_optimizer(optimizer, learning_rate)
    steps_per_epoch = max(1, round(1 / q))
    spent = _epsilon_after(sigma, q, delta, accountant)
    history: dict[str, list] = {"loss": [], "epsilon": [], "clipped_fraction": [],
                                "seconds": []}
    start, sizes = time.perf_counter(), []
    epoch_range = range(epochs)
    for epoch in (progress_bar(epoch_range, "DP-SGD epochs") if progress else epoch_range):
        epoch_start, losses, clipped = time.perf_counter(), [], []
        if redraw is not None and epoch > 0:
            inputs, targets = _redrawn(redraw, rng, inputs, targets)
        for _ in range(steps_per_epoch):
            rows = np.flatnonzero(rng.random(n) < q)           # Poisson sample
            step = dp_sgd_step(model, opt, inputs[rows], targets[rows], l2_norm_clip=clip,
                               noise_multiplier=sigma, expected_batch_size=q * n, seed=rng,
                               chunk_size=chunk_size)
            sizes.append(step["batch_size"])
            if step["batch_size"]:
                losses.append((step["loss"], step["batch_size"]))
                clipped.append((step["clipped_fraction"], step["batch_size"]))
        history["loss"].append(_weighted_mean(losses))
        history["clipped_fraction"].append(_weighted_mean(clipped))
        history["epsilon"].append(spent((epoch + 1) * steps_per_epoch))
        history["seconds"].append(time.perf_counter() - epoch_start)
    return {"history": history, "steps": epochs * steps_per_epoch,
            "epsilon": history["epsilon"][-1], "delta": delta, "sampling_rate": q,
            "noise_multiplier": sigma, "l2_norm_clip": clip,
            "mean_batch_size": float(np.mean(sizes)), "seconds": time.perf_counter() - start}


def _redrawn(redraw: Callable, rng: np.random.Generator, inputs: np.ndarray,
             targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fresh ``(inputs, targets)`` from ``redraw``, checked to match the old shapes."""
    new_inputs, new_targets = _check_examples(*redraw(rng))
    if new_inputs.shape != inputs.shape or new_targets.shape != targets.shape:
        raise ValueError(f"redraw must return arrays of the shapes of inputs {inputs.shape} "
                         f"and targets {targets.shape} (one row per user, same order), got "
                         f"{new_inputs.shape} and {new_targets.shape}")
    return new_inputs, new_targets


def _weighted_mean(pairs: list[tuple[float, int]]) -> float:
    if not pairs:
        return float("nan")
    values, weights = np.array(pairs, dtype=float).T
    return float(np.average(values, weights=weights))


# ------------------------------------------------------------------------------ accounting
def dp_event(noise_multiplier: float, sampling_rate: float,
             steps: int) -> dp_accounting.DpEvent:
    """The DP event of DP-SGD: ``steps`` Poisson-sampled Gaussian mechanisms.

    Returns:
        ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)``.

    Raises:
        ValueError: sigma < 0, q outside (0, 1] or steps < 1.

    Explained in notebook 14.
    """
    sigma = check_float("noise_multiplier", noise_multiplier, strict=False)
    q = check_float("sampling_rate", sampling_rate, maximum=1.0, strict_maximum=False)
    steps = check_int("steps", steps)
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    return dp_accounting.SelfComposedDpEvent(step, steps)


@contextlib.contextmanager
def _quiet_accountant() -> Iterator[None]:
    """Hide dp_accounting's absl warnings that a fractional RDP order did not converge.

    For small noise multipliers, ``RdpAccountant`` cannot evaluate a few orders just above 1
    and leaves them out (it warns for each); leaving orders out can only raise epsilon, so
    the bound stays valid (conservative), and the warnings would only clutter a notebook.
    """
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _epsilon_after(sigma: float, q: float, delta: float,
                   accountant: str) -> Callable[[int], float]:
    """``steps -> epsilon`` for one training run. With RDP the one-step RDP curve is computed
    once and multiplied by the number of steps (as ``RdpAccountant`` composes), so the
    per-epoch epsilons cost next to nothing."""
    if accountant == "pld" or sigma == 0:
        return lambda steps: dp_epsilon(sigma, q, steps, delta, accountant=accountant)
    with _quiet_accountant():
        one_step = dp_accounting.rdp.RdpAccountant().compose(dp_event(sigma, q, 1))

    def epsilon(steps: int) -> float:
        with _quiet_accountant():
            return float(dp_accounting.rdp.compute_epsilon(one_step.orders,
                                                           steps * one_step.rdp, delta)[0])

    return epsilon


def dp_epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float,
               accountant: str = "rdp") -> float:
    """Epsilon spent by ``steps`` DP-SGD steps, at ``delta``, from ``dp_accounting``.

    Args:
        noise_multiplier: ``sigma`` >= 0 (noise standard deviation / clipping norm).
        sampling_rate: Poisson sampling probability ``q`` in (0, 1].
        steps: number of steps >= 1.
        delta: in (0, 1).
        accountant: ``"rdp"`` (Renyi DP, ``RdpAccountant``: fast, slightly loose) or
            ``"pld"`` (privacy loss distributions, ``PLDAccountant``: tighter, slower).

    Returns:
        epsilon; ``inf`` when ``noise_multiplier`` is 0. Results are cached: the same
        arguments cost nothing the second time (a PLD computation takes seconds).

    Raises:
        ValueError: an argument out of range or an unknown accountant.

    Explained in notebook 14.
    """
    sigma, q, steps, delta = _check_privacy(noise_multiplier, sampling_rate, steps, delta)
    check_choice("accountant", accountant, ACCOUNTANTS)
    return _cached_epsilon(sigma, q, steps, delta, accountant)


@functools.lru_cache(maxsize=4096)
def _cached_epsilon(sigma: float, q: float, steps: int, delta: float, accountant: str) -> float:
    if sigma == 0:
        return float("inf")
    if accountant == "rdp":
        ledger = dp_accounting.rdp.RdpAccountant()
    else:
        ledger = dp_accounting.pld.PLDAccountant()
    with _quiet_accountant():
        return float(ledger.compose(dp_event(sigma, q, steps)).get_epsilon(delta))


def noise_for_epsilon(target_epsilon: float, sampling_rate: float, steps: int, delta: float,
                      accountant: str = "rdp", tolerance: float = 1e-3) -> float:
    """The smallest noise multiplier (to a relative ``tolerance``) whose epsilon is at most
    ``target_epsilon``, by bisection (epsilon decreases as the noise grows).

    Args:
        target_epsilon: > 0.
        sampling_rate, steps, delta, accountant: as in :func:`dp_epsilon`.
        tolerance: relative width of the final bracket, in (0, 1). About 10 to 20
            evaluations of :func:`dp_epsilon`: a fraction of a second each with ``"rdp"``,
            seconds each with ``"pld"``.

    Returns:
        ``sigma`` with ``dp_epsilon(sigma, ...) <= target_epsilon`` (the bracket's upper end).

    Raises:
        ValueError: bad arguments, or a target that needs a noise multiplier above 10,000.

    Explained in notebook 14.
    """
    target = check_float("target_epsilon", target_epsilon)
    _check_privacy(1.0, sampling_rate, steps, delta)
    tolerance = check_float("tolerance", tolerance, maximum=1.0)

    def epsilon(sigma: float) -> float:
        return dp_epsilon(sigma, sampling_rate, steps, delta, accountant=accountant)

    low, high = 0.0, 1.0
    while epsilon(high) > target:
        low, high = high, 2 * high
        if high > 1e4:
            raise ValueError(f"epsilon {target} needs a noise multiplier above 10,000 at "
                             f"q={sampling_rate}, {steps} steps, delta={delta}: raise the "
                             "target epsilon or use fewer steps")
    while high - low > tolerance * high:
        middle = (low + high) / 2
        if epsilon(middle) > target:
            low = middle
        else:
            high = middle
    return high


# ------------------------------------------------------------------------------ privacy unit
def one_example_per_user(histories: Sequence | Mapping, max_len: int,
                         rng: int | np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One training example per user, so that example-level privacy is user-level privacy.

    For each user, draw a cut point ``c`` uniformly in ``1 .. len(history) - 1`` of the
    time-ordered history: the input is the (up to) ``max_len`` items before ``c``,
    left-padded with 0; the target is the item at ``c``.

    Args:
        histories: one 1-D array of item indices (>= 1; 0 is padding) per user, oldest first;
            a list, or a dict user -> history (its order is kept).
        max_len: longest input >= 1.
        rng: an integer seed or a NumPy Generator.

    Returns:
        ``(inputs, targets)``: (n_users, max_len) int32 and (n_users,) int32, row ``u`` for
        the ``u``-th history.

    Raises:
        ValueError: no histories, a history with fewer than 2 items (no input before a
            target: leave such users out first), or an item index < 1.

    Explained in notebook 14.
    """
    max_len = check_int("max_len", max_len)
    rng = _as_rng(rng)
    histories = list(histories.values()) if isinstance(histories, Mapping) else list(histories)
    if not histories:
        raise ValueError("histories is empty: give one item-index history per user")
    prefixes, targets = [], np.zeros(len(histories), dtype=np.int32)
    for row, history in enumerate(histories):
        history = np.asarray(history)
        if history.ndim != 1 or len(history) < 2:
            raise ValueError(f"history {row} has {history.size} item(s): every user needs at "
                             "least 2 (an input and a target); leave shorter ones out first")
        if not np.issubdtype(history.dtype, np.integer) or history.min() < 1:
            raise ValueError(f"history {row} must hold integer item indices >= 1 (0 is "
                             f"padding), got {history[:5]}...")
        cut = int(rng.integers(1, len(history)))
        prefixes.append(history[:cut])
        targets[row] = history[cut]
    return left_pad(prefixes, max_len), targets


# ------------------------------------------------------------------------------ federated
def clients_by_user_groups(inputs, targets, user_ids, n_clients: int,
                           seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group users at random into ``n_clients`` clients; each gets all its users' examples.

    Args:
        inputs: (n, ...) examples; targets: (n,) labels; user_ids: (n,) the user of each.
        n_clients: number of clients, 1..number of distinct users.
        seed: seeds the grouping.

    Returns:
        A list of ``(inputs, targets)``, one per client, together holding every example once.

    Raises:
        ValueError: lengths differ, no examples, or more clients than users.

    Explained in notebook 14.
    """
    inputs, targets = _check_examples(inputs, targets)
    user_ids = np.asarray(user_ids)
    if user_ids.shape != targets.shape:
        raise ValueError(f"user_ids must have one entry per example ({len(targets)}), got "
                         f"shape {user_ids.shape}")
    users = np.unique(user_ids)
    if not len(users):
        raise ValueError("no examples to split into clients")
    n_clients = check_int("n_clients", n_clients, maximum=len(users))
    groups = np.array_split(_as_rng(seed).permutation(users), n_clients)
    clients = []
    for group in groups:
        rows = np.flatnonzero(np.isin(user_ids, group))
        clients.append((inputs[rows], targets[rows]))
    return clients


def average_weights(client_weights: list[list[np.ndarray]], counts) -> list[np.ndarray]:
    """The server's step of federated averaging: the mean of the clients' weights, each
    client weighted by its number of examples.

    Args:
        client_weights: per client, its list of weight arrays (``model.get_weights()``).
        counts: per client, its number of examples (> 0).

    Returns:
        The averaged list of weight arrays (dtypes of the first client's).

    Raises:
        ValueError: no clients, counts of another length or not > 0, mismatched shapes.

    Explained in notebook 14.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if not client_weights or counts.shape != (len(client_weights),) or (counts <= 0).any():
        raise ValueError(f"give one positive example count per client: {len(client_weights)} "
                         f"client(s), counts {counts.tolist()}")
    shares = counts / counts.sum()
    averaged = []
    for index, first in enumerate(client_weights[0]):
        layers = [np.asarray(weights[index], dtype=np.float64) for weights in client_weights]
        if any(layer.shape != np.shape(first) for layer in layers):
            raise ValueError(f"weight {index} has different shapes across clients")
        averaged.append(np.tensordot(shares, np.stack(layers), axes=1).astype(first.dtype))
    return averaged


def _sgd_function(model: keras.Model) -> Callable:
    """A compiled plain SGD step on the mean loss, ``w <- w - lr grad``; returns the loss."""
    function = _SGD_FUNCTIONS.get(model)
    if function is not None:
        return function
    model_ref = weakref.ref(model)

    @tf.function(reduce_retracing=True)
    def sgd_step(inputs, targets, learning_rate):
        net = model_ref()
        variables = net.trainable_variables
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(_example_losses(targets, net(inputs, training=True)))
        grads = tape.gradient(loss, variables)
        for variable, grad in zip(variables, grads, strict=True):
            if grad is not None:
                variable.assign_sub(learning_rate * tf.convert_to_tensor(grad))
        return loss

    _SGD_FUNCTIONS[model] = sgd_step
    return sgd_step


def _train_client(model, inputs, targets, local_epochs, batch_size, learning_rate, rng):
    """Local SGD on one client's data; the mean loss of its batches (weighted by size)."""
    step, losses = _sgd_function(model), []
    rate = tf.constant(learning_rate, tf.float32)
    for _ in range(local_epochs):
        order = rng.permutation(len(targets))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            loss = step(tf.constant(inputs[rows]), tf.constant(targets[rows]), rate)
            losses.append((float(loss), len(rows)))
    return _weighted_mean(losses)


def federated_averaging(model: keras.Model, clients: list[tuple[np.ndarray, np.ndarray]], *,
                        rounds: int, clients_per_round: int, local_epochs: int = 1,
                        local_batch_size: int = 32, client_learning_rate: float = 0.1,
                        seed: int = 0, progress: bool = False) -> list[dict]:
    """Federated averaging (McMahan et al., 2017), simulated in one process.

    Each round: draw ``clients_per_round`` clients at random; each starts from the global
    weights and runs ``local_epochs`` epochs of plain SGD (mean sparse softmax cross-entropy,
    shuffled batches of ``local_batch_size``) on its own data; the server sets the global
    weights to the clients' weights averaged with their example counts as weights
    (:func:`average_weights`). ``model`` holds the global weights at the end.

    Args:
        model: Keras model mapping inputs to logits; its current weights start round 1.
        clients: one ``(inputs, targets)`` per client (see :func:`clients_by_user_groups`).
        rounds: number of rounds >= 1.
        clients_per_round: 1..len(clients).
        local_epochs: epochs of local SGD per round >= 1.
        local_batch_size: local batch size >= 1 (>= a client's size: full-batch steps).
        client_learning_rate: local SGD step size > 0.
        seed: seeds the choice of clients and the local shuffles.
        progress: show a progress bar over the rounds.

    Returns:
        One dict per round: ``round``, ``clients`` (indices used), ``examples``, ``loss``
        (example-weighted mean of the clients' local training losses), ``bytes_up`` and
        ``bytes_down`` (weights sent to / from the server: parameter bytes x clients) and
        ``seconds``.

    Raises:
        ValueError: bad arguments, or a client without examples.

    Explained in notebook 14.
    """
    if not clients:
        raise ValueError("clients is empty: give one (inputs, targets) pair per client")
    clients = [_check_examples(x, y) for x, y in clients]
    empty = [i for i, (_, y) in enumerate(clients) if not len(y)]
    if empty:
        raise ValueError(f"clients {empty[:5]} have no examples: leave them out")
    rounds = check_int("rounds", rounds)
    per_round = check_int("clients_per_round", clients_per_round, maximum=len(clients))
    local_epochs = check_int("local_epochs", local_epochs)
    batch_size = check_int("local_batch_size", local_batch_size)
    learning_rate = check_float("client_learning_rate", client_learning_rate)
    _check_model(model, clients[0][0])
    rng = _as_rng(seed)
    global_weights = model.get_weights()
    parameter_bytes = sum(w.nbytes for w in global_weights)
    history = []
    round_range = range(1, rounds + 1)
    for round_number in (progress_bar(round_range, "FedAvg rounds") if progress else round_range):
        start = time.perf_counter()
        chosen = np.sort(rng.choice(len(clients), size=per_round, replace=False))
        weights, counts, losses = [], [], []
        for index in chosen:
            inputs, targets = clients[index]
            model.set_weights(global_weights)
            loss = _train_client(model, inputs, targets, local_epochs, batch_size,
                                 learning_rate, rng)
            weights.append(model.get_weights())
            counts.append(len(targets))
            losses.append((loss, len(targets)))
        global_weights = average_weights(weights, counts)
        model.set_weights(global_weights)
        history.append({"round": round_number, "clients": chosen.tolist(),
                        "examples": int(sum(counts)), "loss": _weighted_mean(losses),
                        "bytes_up": parameter_bytes * per_round,
                        "bytes_down": parameter_bytes * per_round,
                        "seconds": time.perf_counter() - start})
    return history
